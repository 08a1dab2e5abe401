"""Django admin for the access audit: events and sealed batches, read-only (the audit is
append-only; nothing here can add, change or delete a row), with CSV exports of the selected events
or of the whole filtered list.

The filters offer fixed choices rather than Django's default "every value in the column", which
would scan the whole (unbounded) table on each page.
"""

import json

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from api import usage_presenters, usage_selectors
from api.audit_export import ADMIN_COLUMNS, csv_response
from api.deprecations import deprecation_announce, deprecation_state
from api.models import (
    RESOURCE_MODELS,
    AccessEvent,
    AdaptiveLimitChange,
    AuditBatch,
    Deprecation,
    DeprecationNotice,
    Environment,
    Patient,
    UsageHour,
)
from api.workflows import patients as patient_services
from partners.models import Organization
from partners.tiers import ENDPOINT_GROUPS


class ReadOnlyAdmin(admin.ModelAdmin):
    """Seen, never added, changed or deleted here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class FixedChoicesFilter(admin.SimpleListFilter):
    options: tuple[tuple[str, str], ...] = ()

    def lookups(self, request, model_admin):
        return self.options

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(**{self.parameter_name: value}) if value else queryset


class ActionFilter(FixedChoicesFilter):
    title = "action"
    parameter_name = "action"
    options = tuple((a, a) for a in ("read", "search", "create", "update", "delete"))


class ResourceTypeFilter(FixedChoicesFilter):
    title = "resource type"
    parameter_name = "resource_type"
    options = tuple((t, t) for t in sorted({*RESOURCE_MODELS, "Consent"}))


class EnvironmentFilter(FixedChoicesFilter):
    title = "environment"
    parameter_name = "environment"
    options = tuple(Environment.choices)


class DeprecationStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("scheduled", "Scheduled"), ("announced", "Announced"), ("enforced", "Enforced")]

    def queryset(self, request, queryset):
        now = timezone.now()
        published = queryset.filter(published=True)
        if self.value() == "scheduled":
            return published.filter(announced_at__gt=now).exclude(enforced_at__lte=now)
        if self.value() == "announced":
            return published.filter(announced_at__lte=now).exclude(enforced_at__lte=now)
        if self.value() == "enforced":
            return published.filter(enforced_at__lte=now)
        return queryset


def _export_filename() -> str:
    return f"access-events-{timezone.now():%Y%m%dT%H%M%SZ}.csv"


@admin.register(AccessEvent)
class AccessEventAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "occurred_at",
        "outcome",
        "action",
        "resource_type",
        "resource_id",
        "patient_id",
        "refusal_code",
        "client_id",
        "environment",
        "correlation_id",
    ]
    list_display_links = ["id"]
    list_filter = ["outcome", ActionFilter, ResourceTypeFilter, EnvironmentFilter]
    search_fields = ["patient_id", "client_id", "correlation_id", "resource_id"]
    search_help_text = "An exact patient id, client id, correlation id or resource id."
    date_hierarchy = "occurred_at"
    ordering = ["-id"]
    # The audit grows without bound: no COUNT(*) over all of it on every page.
    show_full_result_count = False
    change_list_template = "admin/api/accessevent/change_list.html"
    actions = ["export_csv"]

    def get_search_results(self, request, queryset, search_term):
        """Exact, case-sensitive matches only: these are identifiers, and the admin's own lookups
        (``icontains``, or ``iexact`` for ``=``) cannot use an index on an unbounded table."""
        term = search_term.strip()
        if not term:
            return queryset, False
        matches = Q()
        for field in self.search_fields:
            matches |= Q(**{field: term})
        return queryset.filter(matches), False

    @admin.action(description="Export selected access events as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        return csv_response(queryset.order_by("id"), filename=_export_filename(), columns=ADMIN_COLUMNS)

    def get_urls(self):
        return [
            path("export/", self.admin_site.admin_view(self.export_view), name="api_accessevent_export"),
            *super().get_urls(),
        ]

    def export_view(self, request):
        """The whole changelist as it is filtered and searched now (same query string), as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect(reverse("admin:api_accessevent_changelist") + "?e=1")
        events = changelist.queryset.order_by("id")
        return csv_response(events, filename=_export_filename(), columns=ADMIN_COLUMNS)


@admin.register(AuditBatch)
class AuditBatchAdmin(ReadOnlyAdmin):
    list_display = ["sequence", "first_event_id", "last_event_id", "event_count", "short_hash", "sealed_at"]
    date_hierarchy = "sealed_at"
    ordering = ["-sequence"]
    show_full_result_count = False

    @admin.display(description="hash")
    def short_hash(self, obj):
        return obj.hash[:12]


@admin.register(Deprecation)
class DeprecationAdmin(admin.ModelAdmin):
    """Platform admins publish deprecations here; the API sends their headers (and, once enforced, 410)
    within seconds of a save (api/deprecations.py)."""

    list_display = ["path_prefix", "title", "state", "announced_at", "sunset_at", "enforced_at", "published"]
    list_filter = ["published", DeprecationStateFilter, "sunset_at"]
    search_fields = ["path_prefix", "title", "replacement"]
    ordering = ["sunset_at", "path_prefix"]
    date_hierarchy = "sunset_at"
    readonly_fields = ["created_at", "notices_sent"]
    fieldsets = [
        (None, {"fields": ["path_prefix", "title", "summary", "published"]}),
        ("Where to go instead", {"fields": ["replacement", "migration_guide"]}),
        (
            "Dates",
            {
                "fields": ["announced_at", "sunset_at", "enforced_at", "created_at"],
                "description": "Headers are sent from the announcement; requests get 410 Gone from enforcement "
                "(leave it empty until it is decided). Publish at least six months between announcement and "
                "sunset (docs/versioning.md).",
            },
        ),
        ("Notices", {"fields": ["notices_sent"]}),
    ]

    @admin.display(description="notices sent")
    def notices_sent(self, obj):
        """How many organizations heard each milestone, each a link to who they were (the notices' list
        can be long, so counts here rather than an inline)."""
        if obj.pk is None:
            return "None yet."
        per_milestone = obj.notices.values("milestone").annotate(n=Count("pk")).order_by()
        counts = {row["milestone"]: row["n"] for row in per_milestone}
        if not counts:
            return "None yet: organizations whose apps call it hear of it at each milestone (hourly)."
        url = reverse("admin:api_deprecationnotice_changelist")
        return format_html_join(
            ", ",
            '<a href="{}?deprecation__id__exact={}&amp;milestone__exact={}">{}: {} organization{}</a>',
            (
                (url, obj.pk, key, label, counts[key], "" if counts[key] == 1 else "s")
                for key, label in DeprecationNotice.Milestone.choices
                if key in counts
            ),
        )

    @admin.display(description="state")
    def state(self, obj):
        return deprecation_state(obj, timezone.now())

    def save_model(self, request, obj, form, change):
        was_published = change and type(obj).objects.filter(pk=obj.pk, published=True).exists()
        super().save_model(request, obj, form, change)
        if obj.published and not was_published:
            deprecation_announce(deprecation=obj, base_url=request.build_absolute_uri("/"))


@admin.register(DeprecationNotice)
class DeprecationNoticeAdmin(ReadOnlyAdmin):
    """Who was told of which deprecation, what and when (api/deprecation_notices.py): one row per
    organization and milestone, written by the hourly task, never by hand."""

    list_display = [
        "created_at",
        "deprecation",
        "milestone",
        "organization",
        "recipient_emails",
        "total_calls",
        "email_state",
        "emailed_at",
    ]
    list_filter = ["deprecation", "milestone", "email_state"]
    list_select_related = ["deprecation", "organization"]
    search_fields = ["organization__name", "organization__slug"]
    date_hierarchy = "created_at"
    ordering = ["-created_at", "-pk"]
    fields = [
        "deprecation",
        "organization",
        "milestone",
        "milestone_at",
        "created_at",
        "recipients_table",
        "email_state",
        "emailed_at",
        "email_error",
        "calls_table",
        "subject",
        "body_text",
    ]
    readonly_fields = fields

    @admin.display(description="recipients")
    def recipient_emails(self, obj):
        return ", ".join(r["email"] for r in obj.recipients)

    @admin.display(description="calls (30 days)")
    def total_calls(self, obj):
        return obj.total_calls

    @admin.display(description="recipients")
    def recipients_table(self, obj):
        return format_html(
            "<table><tr><th>email</th><th>user</th><th>emailed at</th><th>attempts</th><th>error</th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (
                        r["email"],
                        r["user_id"],
                        r.get("emailed_at") or (f"gave up {r['gave_up_at']}" if r.get("gave_up_at") else "not yet"),
                        r.get("attempts", 0),
                        r.get("error", ""),
                    )
                    for r in obj.recipients
                ),
            ),
        )

    @admin.display(description="calls listed")
    def calls_table(self, obj):
        return format_html(
            "<table><tr><th>app</th><th>endpoint</th><th>calls</th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{} ({}, {})</td><td>{}</td><td>{}</td></tr>",
                ((c["app"], c["environment"], c["app_id"], c["endpoint"], c["calls"]) for c in obj.calls),
            ),
        )

    @admin.display(description="body")
    def body_text(self, obj):
        return format_html("<pre>{}</pre>", obj.body)


# --- API usage ---------------------------------------------------------------------------------


class EndpointGroupFilter(FixedChoicesFilter):
    title = "endpoint group"
    parameter_name = "group"
    options = tuple((group, group) for group in ENDPOINT_GROUPS)


class StatusClassFilter(FixedChoicesFilter):
    title = "status class"
    parameter_name = "status_class"
    options = tuple((klass, klass) for klass in usage_selectors.STATUS_CLASSES)


@admin.register(UsageHour)
class UsageHourAdmin(ReadOnlyAdmin):
    """The rolled-up usage rows, one per app, endpoint, status class, error code, policy and
    hour; ``/admin/usage/`` (``usage_summary_view``) shows them summed across partners."""

    list_display = ["hour", "organization", "app", "endpoint", "status_class", "error_code", "policy", "count"]
    list_display_links = None
    list_filter = ["organization", "app", EndpointGroupFilter, StatusClassFilter]
    list_select_related = ["organization", "app"]
    date_hierarchy = "hour"
    ordering = ["-hour"]
    show_full_result_count = False
    change_list_template = "admin/api/usagehour/change_list.html"


class AdaptiveGroupFilter(FixedChoicesFilter):
    title = "endpoint group"
    parameter_name = "group"

    def lookups(self, request, model_admin):
        return [(group, group) for group in settings.ADAPTIVE_GROUPS]


class AdaptiveKindFilter(admin.SimpleListFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return [("group", "Group tightened"), ("app", "App capped alone")]

    def queryset(self, request, queryset):
        if self.value() == "group":
            return queryset.filter(app__isnull=True)
        if self.value() == "app":
            return queryset.filter(app__isnull=False)
        return queryset


class InForceFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "in_force"

    def lookups(self, request, model_admin):
        return [("yes", "In force"), ("no", "Ended")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(ended_at__isnull=self.value() == "yes")
        return queryset


@admin.register(AdaptiveLimitChange)
class AdaptiveLimitChangeAdmin(ReadOnlyAdmin):
    """The history of the adaptive limits (``api.adaptive``): each stretch a group's quotas were
    tightened or an app was capped alone, with why. Written by the evaluation alone, so read-only."""

    list_display = ["started_at", "ended_at", "group", "limit", "app", "organization", "reason"]
    list_display_links = ["started_at"]
    list_filter = [InForceFilter, AdaptiveKindFilter, AdaptiveGroupFilter]
    list_select_related = ["app__organization"]
    search_fields = ["app__name", "app__organization__name"]
    date_hierarchy = "started_at"
    ordering = ["-started_at", "-id"]
    readonly_fields = ["group", "app", "factor", "app_cap", "reason", "signals", "started_at", "ended_at"]

    @admin.display(description="limit")
    def limit(self, obj):
        return f"capped at {obj.app_cap:,} a minute" if obj.app_id else f"{obj.factor:.0%} of quotas"

    @admin.display(description="organization", ordering="app__organization__name")
    def organization(self, obj):
        return obj.app.organization if obj.app_id else "every partner"


def usage_summary_view(request):
    """``/admin/usage/``: requests per hour, errors by code, 429s by policy across every partner, the
    organizations that made the most requests today and the adaptive limits in force;
    ``?organization=<id>`` narrows it all to one organization and adds its daily quotas. Staff who may
    view usage rows only."""
    if not request.user.has_perm("api.view_usagehour"):
        raise PermissionDenied
    organization = None
    if chosen := request.GET.get("organization"):
        if not chosen.isdigit():
            raise Http404("No such organization.")
        organization = Organization.objects.select_related("tier").filter(pk=int(chosen)).first()
        if organization is None:
            raise Http404("No such organization.")
    dashboard = usage_selectors.platform_dashboard(period=request.GET.get("range"), organization=organization)
    context = {
        **admin.site.each_context(request),
        "title": f"API usage: {organization.name}" if organization else "API usage across partners",
        "usage": dashboard,
        "organization": organization,
        "periods": usage_selectors.PERIODS.values(),
        "chart": usage_presenters.requests_chart(dashboard),
        "chart_description": usage_presenters.requests_description(dashboard),
    }
    return TemplateResponse(request, "admin/api/usage_summary.html", context)


# --- Patients: read-only, but for a sandbox patient's contact details ----------------------------


class PatientContactForm(forms.ModelForm):
    """The usual contact details of a patient: the first phone and email and the home address. Other
    contact points and addresses are kept as they are."""

    phone = forms.CharField(max_length=60, required=False, help_text="Synthetic: (555) 555-0100 to -0199.")
    email = forms.EmailField(required=False)
    line1 = forms.CharField(label="Address line 1", max_length=200, required=False)
    line2 = forms.CharField(label="Address line 2", max_length=200, required=False)
    city = forms.CharField(max_length=100, required=False)
    state = forms.CharField(max_length=60, required=False)
    postal_code = forms.CharField(max_length=20, required=False)
    country = forms.CharField(max_length=60, required=False)

    class Meta:
        model = Patient
        fields: list[str] = []

    ADDRESS_FIELDS = {"city": "city", "state": "state", "postal_code": "postalCode", "country": "country"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        body = self.instance.body or {}
        telecom = body.get("telecom", [])
        for system in ("phone", "email"):
            point = next((p for p in telecom if p.get("system") == system), None)
            self.initial.setdefault(system, point["value"] if point else "")
        home = next((a for a in body.get("address", []) if a.get("use", "home") == "home"), None) or {}
        lines = home.get("line", [])
        self.initial.setdefault("line1", lines[0] if lines else "")
        self.initial.setdefault("line2", " ".join(lines[1:]))
        for field, element in self.ADDRESS_FIELDS.items():
            self.initial.setdefault(field, home.get(element, ""))

    def clean(self):
        data = super().clean()
        body = self.instance.body or {}
        # Only what the admin touched: rebuilding an untouched element could drop parts the form omits.
        self.changes = {}
        if {"phone", "email"} & set(self.changed_data):
            self.changes["telecom"] = patient_services.telecom_with(
                body, phone=data.get("phone", ""), email=data.get("email", "")
            )
        if {"line1", "line2", *self.ADDRESS_FIELDS} & set(self.changed_data):
            self.changes["address"] = patient_services.address_with(
                body,
                lines=[data.get("line1", ""), data.get("line2", "")],
                **{element: data.get(field, "") for field, element in self.ADDRESS_FIELDS.items()},
            )
        try:
            patient_services.validate_changes(self.changes)
        except ValidationError as exc:
            raise ValidationError([message for found in exc.message_dict.values() for message in found]) from None
        return data


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    """Patients of the clinical store, seen here read-only. A sandbox patient's contact details can be
    corrected (``api.workflows.patients``): the FHIR resource's version moves on and every app that may
    see the patient's demographics receives ``patient.updated``, which is how a partner tests its
    handling of it. Production records come from providers and are never edited here."""

    form = PatientContactForm
    list_display = ["id", "environment", "family", "given", "birth_date", "version_id", "last_updated"]
    list_filter = [EnvironmentFilter]
    search_fields = ["=id", "family", "=identifier_value"]
    ordering = ["environment", "id"]
    show_full_result_count = False
    readonly_fields = [
        "id",
        "environment",
        "synthetic",
        "identifier_value",
        "family",
        "given",
        "birth_date",
        "gender",
        "version_id",
        "last_updated",
        "contact_details",
    ]
    fieldsets = [
        (None, {"fields": ["id", "environment", "synthetic", "identifier_value", "version_id", "last_updated"]}),
        ("Demographics", {"fields": ["family", "given", "birth_date", "gender", "contact_details"]}),
        (
            "Change contact details",
            {
                "fields": ["phone", "email", "line1", "line2", "city", "state", "postal_code", "country"],
                "description": "Sandbox patients only. Saving a change bumps the resource's version and announces "
                "patient.updated to every app that holds the patient's consent to their demographics.",
            },
        ),
    ]

    @admin.display(description="contact details (FHIR)")
    def contact_details(self, obj):
        body = obj.body or {}
        shown = {"telecom": body.get("telecom", []), "address": body.get("address", [])}
        return format_html("<pre>{}</pre>", json.dumps(shown, indent=2, ensure_ascii=False))

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.environment != Environment.SANDBOX:
            return False
        return super().has_change_permission(request, obj)

    def get_fieldsets(self, request, obj=None):
        if obj is not None and not self.has_change_permission(request, obj):
            return self.fieldsets[:2]
        return self.fieldsets

    def save_model(self, request, obj, form, change):
        # Never obj.save(): the service changes the resource, its version and the outbox together.
        _, changed = patient_services.patient_demographics_update(
            environment=obj.environment, patient_id=obj.pk, changes=form.changes, actor=request.user
        )
        if changed:
            self.message_user(
                request, f"Patient/{obj.pk}: {', '.join(changed)} changed; patient.updated announced.", messages.SUCCESS
            )
        else:
            self.message_user(request, f"Patient/{obj.pk}: nothing changed, nothing announced.", messages.INFO)
