"""Django admin for platform admins: organizations, apps, tiers and tier-upgrade decisions.

Every decision goes through the same services the portal uses, so admin cannot bypass a rule
(self-approval, approving a withdrawn request) and every decision is recorded and notified.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import ValidationError
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from partners import services
from partners.exceptions import PartnerError
from partners.models import (
    App,
    CertificationCheckResult,
    CertificationRun,
    InboxMessage,
    Invitation,
    Membership,
    Organization,
    Tier,
    TierUpgradeRequest,
    User,
)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "first_name", "last_name", "email_verified_at", "is_staff", "is_active"]
    list_filter = ["is_staff", "is_superuser", "is_active"]
    search_fields = ["email", "first_name", "last_name"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name", "email_verified_at")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class AppInline(admin.TabularInline):
    model = App
    extra = 0
    fields = ["name", "environment", "client_type", "client_id", "created"]
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 80}), required=False, max_length=4000)


def _reason_step(modeladmin, request, queryset, *, title, action, reason_required, apply):
    """An intermediate page that asks for a reason, then applies ``apply`` to each selected object
    and reports each outcome. Used by the bulk actions and by the buttons on a change page."""
    form = ReasonForm(request.POST if "confirm" in request.POST else None)
    if form.is_bound and form.is_valid():
        reason = form.cleaned_data["reason"]
        if reason_required and not reason.strip():
            form.add_error("reason", "A reason is required; the partner sees it.")
        else:
            for obj in queryset:
                try:
                    changed = apply(obj, reason)
                except (PartnerError, ValidationError) as exc:
                    text = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
                    modeladmin.message_user(request, f"{obj}: {text}", messages.ERROR)
                else:
                    level = messages.SUCCESS if changed else messages.INFO
                    modeladmin.message_user(request, f"{obj}: {'done' if changed else 'no change (already so)'}", level)
            return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "objects": queryset,
        "form": form,
        "action": action,
        "reason_required": reason_required,
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
        "opts": modeladmin.model._meta,
    }
    return TemplateResponse(request, "admin/partners/reason_step.html", context)


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "partner_type", "tier", "status", "created_at"]
    list_filter = ["status", "partner_type", "tier"]
    search_fields = ["name", "slug", "memberships__user__email"]
    readonly_fields = [
        "status",
        "suspended_at",
        "suspended_by",
        "suspension_reason",
        "tier",
        "security_questionnaire",
        "security_questionnaire_submitted_at",
        "baa_signed_at",
        "baa_signed_by",
        "baa_version",
        "created_at",
        "created_by",
    ]
    inlines = [MembershipInline, AppInline]
    actions = ["suspend", "reactivate"]

    @admin.action(description="Suspend selected organizations (stops their tokens)")
    def suspend(self, request, queryset):
        return _reason_step(
            self,
            request,
            queryset,
            title="Suspend organizations",
            action="suspend",
            reason_required=True,
            apply=lambda org, reason: services.organization_suspend(
                organization=org, actor=request.user, reason=reason
            ),
        )

    @admin.action(description="Reactivate selected organizations")
    def reactivate(self, request, queryset):
        for org in queryset:
            changed = services.organization_reactivate(organization=org, actor=request.user)
            self.message_user(request, f"{org}: {'reactivated' if changed else 'was already active'}")


# django-oauth-toolkit registers its own admin for the application model; ours replaces it.
if admin.site.is_registered(App):
    admin.site.unregister(App)


@admin.register(App)
class AppAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "environment", "client_type", "client_id", "created"]
    list_filter = ["environment", "client_type", "organization__tier"]
    search_fields = ["name", "client_id", "organization__name"]
    readonly_fields = [
        "client_id",
        "client_secret",
        "organization",
        "created",
        "updated",
        "secret_rotated_at",
        "user",
    ]
    fields = [
        "name",
        "organization",
        "environment",
        "client_id",
        "client_secret",
        "client_type",
        "grant_types",
        "authorization_grant_type",
        "redirect_uris",
        "description",
        "homepage_url",
        "privacy_policy_url",
        "user",
        "created",
        "updated",
        "secret_rotated_at",
    ]

    def has_add_permission(self, request):
        # Apps are registered by partners in the portal, where the secret is shown once.
        return False


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "rank",
        "production_credentials",
        "write_access",
        "max_apps",
        "max_webhook_subscriptions",
        "requires_admin_approval",
    ]
    ordering = ["rank"]


@admin.register(TierUpgradeRequest)
class TierUpgradeRequestAdmin(admin.ModelAdmin):
    list_display = ["organization", "from_tier", "to_tier", "status", "created_at", "reviewer", "decided_at"]
    list_filter = ["status", "to_tier", "organization__partner_type"]
    search_fields = ["organization__name", "organization__slug", "requested_by__email"]
    date_hierarchy = "created_at"
    actions = ["approve", "reject"]
    readonly_fields = [
        "organization",
        "from_tier",
        "to_tier",
        "status",
        "requested_by",
        "justification",
        "questionnaire_answers",
        "evidence_links",
        "baa_accepted",
        "created_at",
        "reviewer",
        "decided_at",
        "decision_reason",
        "decision_buttons",
    ]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        # Decisions are the record of who did what; they are never deleted.
        return False

    @admin.display(description="Decide")
    def decision_buttons(self, obj):
        if obj is None or not obj.is_pending:
            return "—"
        return format_html(
            '<a class="button" href="{}">Approve…</a>&nbsp;<a class="button" href="{}">Reject…</a>',
            reverse("admin:partners_tierupgraderequest_decide", args=[obj.pk, "approve"]),
            reverse("admin:partners_tierupgraderequest_decide", args=[obj.pk, "reject"]),
        )

    def get_urls(self):
        return [
            path(
                "<int:pk>/decide/<str:decision>/",
                self.admin_site.admin_view(self.decide_view),
                name="partners_tierupgraderequest_decide",
            ),
            *super().get_urls(),
        ]

    def decide_view(self, request, pk, decision):
        if decision not in {"approve", "reject"} or not self.has_change_permission(request):
            return redirect("admin:partners_tierupgraderequest_changelist")
        queryset = TierUpgradeRequest.objects.filter(pk=pk)
        response = getattr(self, decision)(request, queryset)
        return response or redirect("admin:partners_tierupgraderequest_change", pk)

    @admin.action(description="Approve selected requests", permissions=["change"])
    def approve(self, request, queryset):
        return _reason_step(
            self,
            request,
            queryset,
            title="Approve tier upgrades",
            action="approve",
            reason_required=False,
            apply=lambda req, reason: services.tier_upgrade_request_approve(
                upgrade_request=req, reviewer=request.user, reason=reason
            ),
        )

    @admin.action(description="Reject selected requests", permissions=["change"])
    def reject(self, request, queryset):
        return _reason_step(
            self,
            request,
            queryset,
            title="Reject tier upgrades",
            action="reject",
            reason_required=True,
            apply=lambda req, reason: services.tier_upgrade_request_reject(
                upgrade_request=req, reviewer=request.user, reason=reason
            ),
        )


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "organization", "role", "created_at", "expires_at", "accepted_at", "revoked_at"]
    list_filter = ["role"]
    search_fields = ["email", "organization__name"]
    exclude = ["token_hash"]


@admin.register(InboxMessage)
class InboxMessageAdmin(admin.ModelAdmin):
    list_display = ["subject", "recipient", "organization", "created_at", "read_at"]
    search_fields = ["subject", "recipient__email"]


class CertificationCheckResultInline(admin.TabularInline):
    model = CertificationCheckResult
    fields = ["key", "passed", "summary", "evidence", "docs_url"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(CertificationRun)
class CertificationRunAdmin(admin.ModelAdmin):
    """Runs are read-only: partners start them, the suite writes them (``api.certification``). The
    ``error`` of a run that crashed is shown here, not to the partner."""

    list_display = ["pk", "app", "status", "created_at", "finished_at", "started_by"]
    list_filter = ["status"]
    search_fields = ["app__name", "app__organization__name", "app__client_id"]
    readonly_fields = ["app", "started_by", "status", "created_at", "started_at", "finished_at", "error"]
    inlines = [CertificationCheckResultInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
