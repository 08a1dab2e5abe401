"""The changelog in Django admin: platform admins write, preview and publish its entries here;
``/changelog/``, its Atom feed and every app's feed show the published ones (``portal.changelog``)."""

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html

from api.endpoints import InvalidPattern, Pattern
from portal import changelog
from portal.docs import render_markdown
from portal.models import ChangelogEntry


class ChangelogEntryForm(forms.ModelForm):
    class Meta:
        model = ChangelogEntry
        fields = [
            "date",
            "version",
            "kind",
            "title",
            "slug",
            "body",
            "affected_endpoints",
            "migration_notes",
            "deprecation",
            "published",
        ]
        widgets = {
            "affected_endpoints": forms.Textarea(attrs={"rows": 5, "cols": 60, "style": "font-family: monospace"}),
        }

    def clean_affected_endpoints(self) -> str:
        """Each line an ``api.endpoints`` pattern, or the error names every line that is not one, so an
        entry never silently misses the apps whose feeds it belongs in. Saved one pattern per line, in
        the form the changelog shows (``GET /api/v1/visits``), duplicates dropped."""
        text = self.cleaned_data.get("affected_endpoints", "")
        patterns, problems = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                pattern = Pattern.parse(line)
            except InvalidPattern as exc:
                problems.append(f"Line {number} ({line.strip()}): {exc}")
                continue
            if pattern not in patterns:
                patterns.append(pattern)
        if problems:
            raise forms.ValidationError(problems)
        return "\n".join(str(pattern) for pattern in patterns)


@admin.register(ChangelogEntry)
class ChangelogEntryAdmin(admin.ModelAdmin):
    form = ChangelogEntryForm
    list_display = ["date", "title", "kind", "version", "endpoint_count", "deprecation", "published"]
    list_display_links = ["title"]
    list_filter = ["published", "kind", "version", "date"]
    list_select_related = ["deprecation"]
    search_fields = ["title", "slug", "body", "affected_endpoints", "migration_notes"]
    date_hierarchy = "date"
    ordering = ["-date", "-id"]
    prepopulated_fields = {"slug": ["title"]}
    autocomplete_fields = ["deprecation"]
    readonly_fields = ["preview", "created_at", "updated_at"]
    actions = ["publish", "unpublish"]
    save_on_top = True
    fieldsets = [
        (None, {"fields": ["date", "version", "kind", "title", "slug", "published"]}),
        (
            "What changed",
            {
                "fields": ["body", "affected_endpoints", "migration_notes", "deprecation"],
                "description": "Body and migration notes are Markdown. Affected endpoints decide which apps' "
                "feeds hold the entry: the apps that called one of them in the last 30 days.",
            },
        ),
        ("Preview (as last saved)", {"fields": ["preview"]}),
        ("History", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    @admin.display(description="endpoints")
    def endpoint_count(self, obj):
        return len(changelog.entry_patterns(obj))

    @admin.display(description="preview")
    def preview(self, obj):
        if obj is None or not obj.pk:
            return "Save the entry to see it as partners will."
        # Both parts are sanitized Markdown (portal.docs.render_markdown).
        return format_html(
            '<div class="changelog-preview" style="max-width: 48rem">{}{}</div>',
            render_markdown(obj.body),
            format_html("<h3>What to do</h3>{}", render_markdown(obj.migration_notes)) if obj.migration_notes else "",
        )

    @admin.action(description="Publish the selected entries")
    def publish(self, request, queryset):
        changed = sum(changelog.changelog_entry_publish(entry=entry) for entry in queryset)
        self.message_user(request, f"{changed} entr{'y' if changed == 1 else 'ies'} published.", messages.SUCCESS)

    @admin.action(description="Unpublish the selected entries")
    def unpublish(self, request, queryset):
        changed = sum(changelog.changelog_entry_unpublish(entry=entry) for entry in queryset)
        self.message_user(request, f"{changed} entr{'y' if changed == 1 else 'ies'} unpublished.", messages.SUCCESS)


# The portal's analytics (portal.analytics_admin): the events, and /admin/portal/analytics/.
from portal import analytics_admin  # noqa: E402, F401 - registers PortalEventAdmin
