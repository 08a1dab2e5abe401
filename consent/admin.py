"""Django admin for consent: texts (edited as drafts, then published for good), grants and the
ledger (read-only: they change through consent.services only), and the records that decide which
providers hold a patient's records and what they allow (editable)."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from consent import services
from consent.models import (
    AppAuthorization,
    CareRelationship,
    ConsentGrant,
    ConsentScreenShown,
    ConsentText,
    LedgerEvent,
)
from partners import scopes as registry
from partners.exceptions import PartnerError


class ReadOnlyAdmin(admin.ModelAdmin):
    """Seen, never added, changed or deleted here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ConsentTextForm(forms.ModelForm):
    data_classes = forms.MultipleChoiceField(
        choices=[(dc.key, f"{dc.key}: {dc.description}") for dc in registry.DATA_CLASSES.values()],
        widget=forms.CheckboxSelectMultiple,
        help_text="What this text covers. A new version that adds classes makes patients consent again; "
        "one that only rewords does not.",
    )

    class Meta:
        model = ConsentText
        fields = ["purpose", "version", "title", "body", "data_classes", "effective_at"]


@admin.register(ConsentText)
class ConsentTextAdmin(admin.ModelAdmin):
    form = ConsentTextForm
    list_display = ["purpose", "version", "title", "effective_at", "published_at"]
    list_filter = ["purpose"]
    search_fields = ["purpose", "title"]
    readonly_fields = ["published_at", "created_at"]
    actions = ["publish"]

    def _published(self, obj) -> bool:
        return obj is not None and obj.published_at is not None

    # A published text never changes: it is shown read-only and cannot be deleted.
    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and not self._published(obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not self._published(obj)

    @admin.action(description="Publish the selected drafts (they can never change afterwards)")
    def publish(self, request, queryset):
        for text in queryset.order_by("purpose", "version"):
            try:
                services.consent_text_publish(text=text)
            except ValidationError as exc:
                self.message_user(request, f"{text}: {' '.join(exc.messages)}", messages.ERROR)
            except PartnerError as exc:
                self.message_user(request, f"{text}: {exc}", messages.WARNING)
            else:
                self.message_user(request, f"{text}: published.", messages.SUCCESS)


@admin.register(ConsentGrant)
class ConsentGrantAdmin(ReadOnlyAdmin):
    list_display = ["id", "patient_id", "app", "status", "channel", "purpose", "text", "created_at", "ended_at"]
    list_filter = ["status", "channel", "purpose"]
    search_fields = ["=patient_id", "app__name", "app__client_id"]
    list_select_related = ["app", "text"]
    date_hierarchy = "created_at"


@admin.register(LedgerEvent)
class LedgerEventAdmin(ReadOnlyAdmin):
    list_display = ["patient_id", "sequence", "kind", "app", "actor", "channel", "occurred_at", "short_hash"]
    list_filter = ["kind", "channel"]
    search_fields = ["=patient_id"]
    list_select_related = ["app"]
    # The ledger grows without bound: no COUNT(*) over all of it on every page.
    show_full_result_count = False

    @admin.display(description="hash")
    def short_hash(self, obj):
        return obj.hash[:12]


@admin.register(ConsentScreenShown)
class ConsentScreenShownAdmin(ReadOnlyAdmin):
    """Each consent screen shown and what the patient decided (undecided: not answered, or not yet);
    ``/admin/ecosystem/`` sums them up as the consent completion rate."""

    list_display = ["shown_at", "patient_id", "app", "decision", "decided_at"]
    list_filter = ["decision"]
    search_fields = ["=patient_id", "app__name", "app__client_id"]
    list_select_related = ["app"]
    date_hierarchy = "shown_at"
    show_full_result_count = False


@admin.register(CareRelationship)
class CareRelationshipAdmin(admin.ModelAdmin):
    list_display = ["patient_id", "organization", "created_at"]
    search_fields = ["=patient_id", "organization__name", "organization__slug"]
    autocomplete_fields = ["organization"]


@admin.register(AppAuthorization)
class AppAuthorizationAdmin(admin.ModelAdmin):
    list_display = ["organization", "app", "decision", "decided_by", "decided_at"]
    list_filter = ["decision"]
    search_fields = ["organization__name", "app__name", "app__client_id"]
    autocomplete_fields = ["organization", "app"]
    readonly_fields = ["decided_by", "decided_at"]

    def save_model(self, request, obj, form, change):
        obj.decided_by = request.user
        super().save_model(request, obj, form, change)
