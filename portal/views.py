"""Developer-portal pages. Each view validates its form, calls one ``partners.services`` function
and renders; the rules (roles, tiers, states) live in the services.

Service errors map onto the page the same way everywhere:

- ``ValidationError``: field by field onto the form (``add_service_errors``), page re-rendered;
- ``NotPermitted``: a rendered 403 page carrying the message;
- ``InvalidState``: the message shown on the page (or flashed before a redirect).
"""

import json
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django_ratelimit.decorators import ratelimit

from api import audit_selectors, usage_presenters, usage_selectors
from api.audit_export import PARTNER_COLUMNS, csv_response
from partners import selectors, services
from partners.exceptions import InvalidState, NotPermitted, TierLimitReached
from partners.models import App, Membership
from partners.tiers import BAA_VERSION, SECURITY_QUESTIONNAIRE
from portal import changelog, presenters
from portal.context import current_membership, organization_required, set_current_organization
from portal.forms import (
    AccessLogFilterForm,
    AppCreateForm,
    AppEditForm,
    AppKeysForm,
    EmailAuthenticationForm,
    InviteForm,
    OrganizationForm,
    SignupForm,
    UpgradeRequestForm,
    add_service_errors,
)

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


# --- Helpers ---------------------------------------------------------------------------------


def rate_limited(*, group: str, key: str = "ip", rate: str = "10/m", method: str = "POST"):
    """django-ratelimit's decorator; RatelimitMiddleware answers a blocked request with a 429."""
    return ratelimit(group=group, key=key, rate=rate, method=method, block=True)


def refuse(request, exc: Exception | str, status: int = 403):
    """The rendered refusal page (``403.html`` reads ``exception``, like Django's own 403 view)."""
    return render(request, "403.html", {"exception": str(exc)}, status=status)


@dataclass
class Submission:
    """What ``submit`` made of a form's service call: its result, or the page that refuses it, or the
    status to render the form again with (its errors are on the form)."""

    result: object = None
    refusal: object = None  # the 403 page, for a caller whose role does not allow it
    status: int = 200
    succeeded: bool = False


def submit(request, form, action, *, tier_limit_status: int | None = None) -> Submission:
    """Run a valid form's service call and show its refusals the one way every portal form does: a
    ``ValidationError`` on the form's fields, ``NotPermitted`` as the 403 page, ``InvalidState`` on the
    form with 409. With ``tier_limit_status``, a ``TierLimitReached`` goes on the form too, with that
    status: the fix is an upgrade, said next to what was asked for, not a different role."""
    try:
        result = action()
    except ValidationError as exc:
        add_service_errors(form, exc)
        return Submission()
    except TierLimitReached as exc:
        if tier_limit_status is None:
            return Submission(refusal=refuse(request, exc))
        form.add_error(None, str(exc))
        return Submission(status=tier_limit_status)
    except NotPermitted as exc:
        return Submission(refusal=refuse(request, exc))
    except InvalidState as exc:
        form.add_error(None, str(exc))
        return Submission(status=409)
    return Submission(result=result, succeeded=True)


def perform(request, action, *, success, then: str):
    """A POST button's whole response: run the service call, answer a refusal with the 403 page,
    flash a state or validation error, flash ``success`` (text, or a function of the result)."""
    try:
        result = action()
    except NotPermitted as exc:
        return refuse(request, exc)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    except InvalidState as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, success(result) if callable(success) else success)
    return redirect(then)


def safe_next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return ""


def secret_session_key(app_id: int) -> str:
    """Where the plain-text secret waits, for exactly one page view, after create or rotate."""
    return f"portal:app-secret:{app_id}"


def _app_or_404(request, pk: int) -> App:
    app = selectors.app_for_member(user=request.user, app_id=pk)
    if app is None:
        raise Http404("No such app.")
    if (current := current_membership(request)) is None or current.organization_id != app.organization_id:
        # Following a link to another of the user's organizations makes it the current one, so the
        # navigation, the switcher and the suspended banner describe what is on the page.
        set_current_organization(request, app.organization_id)
    return app


# --- Home ------------------------------------------------------------------------------------


def home(request):
    if not request.user.is_authenticated:
        return render(request, "portal/landing.html")
    membership = current_membership(request)
    organization = membership.organization if membership else None
    app_count = selectors.apps_of(organization).count() if organization else 0
    steps = [
        {
            "label": "Confirm your email address",
            "done": request.user.email_verified,
            "detail": "Follow the link we emailed you; it unlocks creating an organization.",
        },
        {
            "label": "Create or join an organization",
            "done": membership is not None,
            "detail": "Apps, members and tiers belong to an organization.",
            "url": "portal:organization-create",
        },
        {
            "label": "Register your first app",
            "done": app_count > 0,
            "detail": "Sandbox credentials are issued at once.",
            "url": "portal:app-create",
        },
    ]
    return render(
        request,
        "portal/dashboard.html",
        {
            "membership": membership,
            "organization": organization,
            "app_count": app_count,
            "steps": steps,
            "next_step": next((step for step in steps if not step["done"]), None),
        },
    )


# --- Accounts --------------------------------------------------------------------------------


@rate_limited(group="portal:signup")
def signup(request):
    next_url = safe_next(request)
    if request.user.is_authenticated:
        return redirect(next_url or "portal:home")
    if request.method == "POST":
        form = SignupForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                user = services.user_register(
                    email=data["email"],
                    password=data["password"],
                    first_name=data["first_name"],
                    last_name=data["last_name"],
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                login(request, user, backend=MODEL_BACKEND)
                messages.success(
                    request,
                    f"We sent a confirmation link to {user.email}. Follow it to confirm your address; "
                    "then you can create an organization.",
                )
                return redirect(next_url or "portal:home")
    else:
        form = SignupForm(initial={"email": request.GET.get("email", "")[:254]})
    return render(request, "registration/signup.html", {"form": form, "next": next_url})


login_view = rate_limited(group="portal:login")(
    auth_views.LoginView.as_view(form_class=EmailAuthenticationForm, redirect_authenticated_user=True)
)

# Every POST sends an email to the address given: throttle it like login, against email bombing.
password_reset_view = rate_limited(group="portal:password-reset")(auth_views.PasswordResetView.as_view())


def verify_email(request, token):
    destination = "portal:home" if request.user.is_authenticated else "login"
    try:
        user = services.user_verify_email(token=token)
    except InvalidState as exc:
        messages.error(request, str(exc))
        return redirect(destination)
    messages.success(request, f"Thank you: {user.email} is confirmed.")
    return redirect(destination)


@login_required
@require_POST
@rate_limited(group="portal:verify-resend", key="user", rate="5/h")
def verify_email_resend(request):
    if request.user.email_verified:
        messages.info(request, f"{request.user.email} is already confirmed.")
    else:
        services.user_send_verification_email(user=request.user)
        messages.success(request, f"We sent a new confirmation link to {request.user.email}.")
    return redirect(safe_next(request) or "portal:home")


# --- Organization ----------------------------------------------------------------------------


def _organization_page(request, *, invite_form=None, status=200):
    organization, membership = request.organization, request.membership
    if invite_form is None and membership.can_manage_members:
        invite_form = InviteForm(inviter=membership)
    return render(
        request,
        "portal/organization.html",
        {
            "organization": organization,
            "membership": membership,
            "members": selectors.members_of(organization),
            "invitations": selectors.open_invitations_of(organization),
            "invite_form": invite_form if membership.can_manage_members else None,
            "decisions": selectors.decision_history(organization),
            # Only an owner hands out or takes away ownership; admins manage everyone else.
            "role_choices": [
                (value, label)
                for value, label in Membership.Role.choices
                if membership.role == Membership.Role.OWNER or value != Membership.Role.OWNER
            ],
            "manageable_member_ids": {
                m.pk
                for m in selectors.members_of(organization)
                if membership.can_manage_members
                and m.user_id != request.user.pk
                and (membership.role == Membership.Role.OWNER or m.role != Membership.Role.OWNER)
            },
            "now": timezone.now(),
        },
        status=status,
    )


@organization_required
def organization(request):
    return _organization_page(request)


@login_required
def organization_create(request):
    status = 200
    if request.method == "POST":
        form = OrganizationForm(request.POST)
        if form.is_valid():
            try:
                created = services.organization_create(created_by=request.user, **form.cleaned_data)
            except ValidationError as exc:
                add_service_errors(form, exc)
            except NotPermitted as exc:
                form.add_error(None, str(exc))
                status = 403
            else:
                set_current_organization(request, created.pk)
                messages.success(request, f"{created.name} is created and you are its owner. Register an app next.")
                return redirect("portal:organization")
    else:
        form = OrganizationForm()
    return render(request, "portal/organization_create.html", {"form": form}, status=status)


@login_required
@require_POST
def organization_switch(request, pk):
    chosen = selectors.organization_for_member(user=request.user, organization_id=pk)
    if chosen is None:
        raise Http404("No such organization.")
    set_current_organization(request, chosen.pk)
    messages.info(request, f"You are now working in {chosen.name}.")
    return redirect(safe_next(request) or "portal:home")


@organization_required
@require_POST
def invite(request):
    form = InviteForm(request.POST, inviter=request.membership)
    if form.is_valid():
        try:
            invitation = services.membership_invite(
                organization=request.organization,
                invited_by=request.user,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        except NotPermitted as exc:
            return refuse(request, exc)
        except InvalidState as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request,
                f"We emailed an invitation to {invitation.email} ({invitation.get_role_display().lower()}).",
            )
            return redirect("portal:organization")
    return _organization_page(request, invite_form=form)


@login_required
@require_POST
def invitation_revoke(request, pk):
    invitation = selectors.invitation_for_member(user=request.user, invitation_id=pk)
    if invitation is None:
        raise Http404("No such invitation.")
    return perform(
        request,
        lambda: services.invitation_revoke(invitation=invitation, actor=request.user),
        success=f"The invitation for {invitation.email} is revoked; its link no longer works.",
        then="portal:organization",
    )


def _membership_or_404(request, pk: int) -> Membership:
    membership = selectors.membership_for_member(user=request.user, membership_id=pk)
    if membership is None:
        raise Http404("No such member.")
    return membership


@login_required
@require_POST
def member_change_role(request, pk):
    target = _membership_or_404(request, pk)
    return perform(
        request,
        lambda: services.membership_change_role(
            membership=target, actor=request.user, role=request.POST.get("role", "")
        ),
        success=lambda changed: f"{changed.user.email} is now {changed.get_role_display().lower()}.",
        then="portal:organization",
    )


@login_required
@require_POST
def member_remove(request, pk):
    target = _membership_or_404(request, pk)
    try:
        services.membership_remove(membership=target, actor=request.user)
    except NotPermitted as exc:
        return refuse(request, exc)
    except InvalidState as exc:
        messages.error(request, str(exc))
        return redirect("portal:organization")
    if target.user_id == request.user.pk:
        messages.success(request, f"You left {target.organization.name}.")
        return redirect("portal:home")
    messages.success(request, f"{target.user.email} no longer belongs to {target.organization.name}.")
    return redirect("portal:organization")


def invitation_accept(request, token):
    invitation = services.invitation_by_token(token)
    if invitation is None:
        return render(request, "portal/invitation.html", {"invitation": None}, status=404)
    error, status = "", 200
    if request.method == "POST":
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        try:
            membership = services.invitation_accept(token=token, user=request.user)
        except NotPermitted as exc:
            error, status = str(exc), 403
        except InvalidState as exc:
            error, status = str(exc), 409
        else:
            set_current_organization(request, membership.organization_id)
            role = membership.get_role_display().lower()
            messages.success(request, f"Welcome to {membership.organization.name}: you joined as {role}.")
            return redirect("portal:organization")
    if invitation.revoked_at:
        state = "revoked"
    elif invitation.accepted_at:
        state = "accepted"
    elif invitation.expires_at <= timezone.now():
        state = "expired"
    else:
        state = "open"
    user = request.user
    return render(
        request,
        "portal/invitation.html",
        {
            "invitation": invitation,
            "state": state,
            "error": error,
            "email_matches": user.is_authenticated and user.email.lower() == invitation.email.lower(),
            "next": request.get_full_path(),
        },
        status=status,
    )


# --- Apps ------------------------------------------------------------------------------------


@organization_required
def apps(request):
    organization = request.organization
    app_list = list(selectors.apps_of(organization))
    return render(
        request,
        "portal/apps.html",
        {
            "organization": organization,
            "membership": request.membership,
            "apps": app_list,
            "at_limit": len(app_list) >= organization.tier.max_apps,
        },
    )


def _role_refusal(membership, action: str) -> NotPermitted:
    return NotPermitted(
        f"Your role ({membership.get_role_display()}) does not allow {action}. "
        "Ask an owner or admin of the organization to change your role."
    )


@organization_required
def app_create(request):
    membership, organization = request.membership, request.organization
    status = 200
    if request.method == "POST":
        form = AppCreateForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            submission = submit(
                request,
                form,
                lambda: services.app_create(
                    organization=organization,
                    actor=request.user,
                    name=data["name"],
                    environment=data["environment"],
                    client_type=data["client_type"],
                    grant_types=data["grant_types"],
                    redirect_uris=data["redirect_uris"],
                    description=data["description"],
                    homepage_url=data["homepage_url"],
                    privacy_policy_url=data["privacy_policy_url"],
                ),
                tier_limit_status=403,
            )
            if submission.refusal:
                return submission.refusal
            status = submission.status
            if submission.succeeded:
                app, secret = submission.result
                if secret:
                    request.session[secret_session_key(app.pk)] = secret
                messages.success(request, f"{app.name} is registered.")
                return redirect(app)
        if not membership.can_manage_apps:
            return refuse(request, _role_refusal(membership, "registering apps"))
    else:
        if not membership.can_manage_apps:
            return refuse(request, _role_refusal(membership, "registering apps"))
        form = AppCreateForm()
    return render(
        request,
        "portal/app_form.html",
        {"form": form, "organization": organization, "tier": organization.tier, "creating": True},
        status=status,
    )


@login_required
def app_detail(request, pk):
    app = _app_or_404(request, pk)
    secret = request.session.pop(secret_session_key(app.pk), None)
    response = render(
        request,
        "portal/app_detail.html",
        {
            "app": app,
            "organization": app.organization,
            "membership": selectors.membership_for(user=request.user, organization=app.organization),
            "secret": secret,
            "registered_keys": presenters.registered_keys(app),
            "changelog_entries": len(changelog.changelog_entries_for_app(app)),
            "changelog_feed_url": changelog.app_feed_url(app),
        },
    )
    if secret:
        add_never_cache_headers(response)  # includes no-store: the secret must not land in any cache
    return response


def _keys_form_for(app: App) -> AppKeysForm:
    return AppKeysForm(initial={"jwks": json.dumps(app.jwks, indent=2) if app.jwks else "", "jwks_url": app.jwks_url})


def _app_edit_page(request, app: App, *, form=None, keys_form=None, status=200):
    """The edit page: the app's details and, in a form of its own, its Backend Services keys."""
    if form is None:
        form = AppEditForm(
            initial={
                "name": app.name,
                "redirect_uris": "\n".join(app.redirect_uri_list),
                "description": app.description,
                "homepage_url": app.homepage_url,
                "privacy_policy_url": app.privacy_policy_url,
            }
        )
    return render(
        request,
        "portal/app_form.html",
        {
            "form": form,
            "keys_form": keys_form or _keys_form_for(app),
            "app": app,
            "organization": app.organization,
            "creating": False,
        },
        status=status,
    )


@login_required
def app_edit(request, pk):
    app = _app_or_404(request, pk)
    membership = selectors.membership_for(user=request.user, organization=app.organization)
    if request.method != "POST":
        if not membership.can_manage_apps:
            return refuse(request, _role_refusal(membership, "changing apps"))
        return _app_edit_page(request, app)
    status = 200
    form = AppEditForm(request.POST)
    if form.is_valid():
        submission = submit(
            request, form, lambda: services.app_update(app=app, actor=request.user, **form.cleaned_data)
        )
        if submission.refusal:
            return submission.refusal
        status = submission.status
        if submission.succeeded:
            messages.success(request, "Your changes are saved.")
            return redirect(app)
    elif not membership.can_manage_apps:
        return refuse(request, _role_refusal(membership, "changing apps"))
    return _app_edit_page(request, app, form=form, status=status)


@login_required
@require_POST
def app_keys(request, pk):
    app = _app_or_404(request, pk)
    membership = selectors.membership_for(user=request.user, organization=app.organization)
    status = 200
    keys_form = AppKeysForm(request.POST)
    if keys_form.is_valid():
        data = keys_form.cleaned_data
        submission = submit(
            request,
            keys_form,
            lambda: services.app_set_keys(app=app, actor=request.user, jwks=data["jwks"], jwks_url=data["jwks_url"]),
        )
        if submission.refusal:
            return submission.refusal
        status = submission.status
        if submission.succeeded:
            messages.success(
                request,
                "Your app's public keys are saved."
                if submission.result.uses_key_authentication
                else "Your app's keys are removed.",
            )
            return redirect(app)
    elif not membership.can_manage_apps:
        return refuse(request, _role_refusal(membership, "changing apps"))
    # Never send pasted key material back to the browser: what was refused may be a private key.
    keys_form.data = keys_form.data.copy()
    keys_form.data["jwks"] = ""
    return _app_edit_page(request, app, keys_form=keys_form, status=status)


@login_required
@require_POST
def app_rotate_secret(request, pk):
    app = _app_or_404(request, pk)
    try:
        secret = services.app_rotate_secret(app=app, actor=request.user)
    except NotPermitted as exc:
        return refuse(request, exc)
    except InvalidState as exc:
        messages.error(request, str(exc))
        return redirect(app)
    request.session[secret_session_key(app.pk)] = secret
    messages.success(request, "The client secret is rotated: the old secret no longer works.")
    return redirect(app)


ACCESS_LOG_PAGE_SIZE = 50


@login_required
def app_access_log(request, pk):
    """The app's own access events (every touch of patient data and every refused attempt, made
    with its tokens), newest first, filtered by date range and outcome; ``?format=csv`` streams
    all of them that match, oldest first."""
    app = _app_or_404(request, pk)
    form = AccessLogFilterForm(request.GET)
    context = {"app": app, "organization": app.organization, "form": form, "page": None}
    if not form.is_valid():
        return render(request, "portal/app_access_log.html", context, status=400)
    as_csv = request.GET.get("format") == "csv"
    events = audit_selectors.access_events_of_app(app=app, **form.bounds(), newest_first=not as_csv)
    if as_csv:
        filename = f"access-log-app-{app.pk}-{timezone.now():%Y%m%dT%H%M%SZ}.csv"
        return csv_response(events, filename=filename, columns=PARTNER_COLUMNS)
    context["page"] = Paginator(events, ACCESS_LOG_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "portal/app_access_log.html", context)


@login_required
def app_usage(request, pk):
    """The app's API usage: requests per hour by status class (``?range=24h`` or ``7d``), errors by
    code, 429s by policy, and its organization's daily quotas today with when each runs out."""
    app = _app_or_404(request, pk)
    dashboard = usage_selectors.app_dashboard(app=app, period=request.GET.get("range"))
    return render(
        request,
        "portal/app_usage.html",
        {
            "app": app,
            "organization": app.organization,
            "usage": dashboard,
            "periods": usage_selectors.PERIODS.values(),
            "chart": usage_presenters.requests_chart(dashboard),
            "chart_description": usage_presenters.requests_description(dashboard),
        },
    )


# --- Tiers -----------------------------------------------------------------------------------


def _tiers_page(request, *, form=None, status=200):
    organization, membership = request.organization, request.membership
    tier = organization.tier
    upcoming = tier.next_tier()
    pending = selectors.pending_upgrade_request(organization)
    can_request = membership.can_request_upgrade and upcoming is not None and pending is None
    if form is None and can_request:
        form = UpgradeRequestForm(to_tier=upcoming, organization=organization)
    return render(
        request,
        "portal/tiers.html",
        {
            "organization": organization,
            "membership": membership,
            "tier": tier,
            "next_tier": upcoming,
            "capabilities": presenters.capability_rows(tier, upcoming),
            "quotas": presenters.quota_rows(tier, upcoming),
            "quota_windows": [label for _, label in presenters.QUOTA_WINDOW_LABELS],
            "added_scopes": presenters.added_scopes(tier, upcoming),
            "checklist": selectors.tier_checklist(organization) if upcoming else [],
            "pending": pending,
            "form": form if can_request else None,
            "decisions": selectors.decision_history(organization),
            "questions": {q.key: q.text for q in SECURITY_QUESTIONNAIRE},
            "baa_version": BAA_VERSION,
        },
        status=status,
    )


@organization_required
def tiers(request):
    return _tiers_page(request)


@organization_required
@require_POST
def upgrade_request(request):
    organization = request.organization
    form = UpgradeRequestForm(request.POST, to_tier=organization.tier.next_tier(), organization=organization)
    if form.is_valid():
        data = form.cleaned_data
        try:
            created = services.tier_upgrade_request_create(
                organization=organization,
                actor=request.user,
                justification=data["justification"],
                questionnaire_answers=form.questionnaire_answers(),
                evidence_links=data["evidence_links"],
                baa_accepted=data.get("baa_accepted", False),
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        except NotPermitted as exc:
            return refuse(request, exc)
        except InvalidState as exc:
            messages.error(request, str(exc))
            return redirect("portal:tiers")
        else:
            messages.success(
                request,
                f"Your request for the {created.to_tier.name} tier is sent. A platform admin reviews it; "
                "the decision arrives in your inbox and by email.",
            )
            return redirect("portal:tiers")
    return _tiers_page(request, form=form)


@login_required
@require_POST
def upgrade_withdraw(request, pk):
    upgrade = selectors.upgrade_request_for_member(user=request.user, request_id=pk)
    if upgrade is None:
        raise Http404("No such request.")
    return perform(
        request,
        lambda: services.tier_upgrade_request_withdraw(upgrade_request=upgrade, actor=request.user),
        success=f"Your request for the {upgrade.to_tier.name} tier is withdrawn.",
        then="portal:tiers",
    )


# --- Inbox -----------------------------------------------------------------------------------


@login_required
def inbox(request):
    page = Paginator(selectors.inbox_of(request.user), 25).get_page(request.GET.get("page"))
    return render(request, "portal/inbox.html", {"page": page, "notices": page.object_list})


@login_required
def inbox_message(request, pk):
    notice = selectors.inbox_of(request.user).filter(pk=pk).first()
    if notice is None:
        raise Http404("No such message.")
    services.inbox_message_mark_read(message=notice, user=request.user)
    return render(request, "portal/inbox_message.html", {"notice": notice})
