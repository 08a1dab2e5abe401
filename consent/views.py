"""The consent screen (``/oauth/authorize/``), a patient's connected apps (``/me/apps/``) and a
provider organization's decisions about apps (``/org/app-authorizations/``).

Views validate, call one ``consent.services`` function and render. The consent screen is the
platform's authorization endpoint (``partners.oauth_views.AuthorizationView``, every SMART check
kept) with the patient's consent on top: what was asked is signed into the page on the GET, the
POST approves at most that, and the grant (or the denial) is recorded in the same request.
"""

from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from urllib.parse import parse_qs, urlsplit

import markdown
import nh3
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_http_methods, require_POST
from oauth2_provider.exceptions import OAuthToolkitError
from oauthlib.oauth2.rfc6749 import errors

from consent import patient_selectors, screen_services, services
from consent.forms import EXPIRED, AppAuthorizationForm, ConsentForm, ConsentRequest, RevokeForm
from consent.models import AppAuthorization, ConsentGrant, ConsentText
from partners import scopes as registry
from partners import selectors as partner_selectors
from partners.exceptions import InvalidState, NotPermitted
from partners.models import App, Membership, Organization
from partners.oauth_views import AuthorizationView

CURRENT_ORG_SESSION_KEY = "current_org_id"  # the portal's key for the current organization
DECIDING_ROLES = {Membership.Role.OWNER, Membership.Role.ADMIN}


# --- Helpers -----------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _clean_markdown(body: str) -> str:
    return nh3.clean(markdown.markdown(body, output_format="html"))


def render_markdown(body: str) -> SafeString:
    """Markdown to HTML, then through nh3's allow-list: a consent text can carry no script or
    event handler, whoever wrote it."""
    return mark_safe(_clean_markdown(body or ""))  # noqa: S308 - sanitized by nh3 just above


def asks_for_patient_data(scope_names) -> bool:
    """Whether these scopes reach health data (any data class beyond sign-in and session)."""
    return bool(services.data_classes_of(scope_names))


def refuse(request, exc, status: int = 403):
    return render(request, "403.html", {"exception": str(exc)}, status=status)


def grouped_sentences(scope_names) -> list[tuple[registry.DataClass, list[registry.Scope]]]:
    parsed, _ = registry.parse_many(list(scope_names))
    return registry.grouped_by_data_class(parsed)


# --- The consent screen --------------------------------------------------------------------------


@dataclass(frozen=True)
class ScopeChoice:
    scope: registry.Scope
    field_id: str
    checked: bool  # optional scopes only: ticked on the page
    is_new: bool  # an active grant exists and does not include it yet
    already_allowed: bool  # the active grant includes it

    @property
    def optional(self) -> bool:
        return self.scope.optional


@dataclass(frozen=True)
class ScopeSection:
    data_class: registry.DataClass
    choices: list[ScopeChoice]
    index: int

    @property
    def has_checkboxes(self) -> bool:
        return any(choice.optional for choice in self.choices)


@dataclass
class ConsentScreen:
    """Everything the consent screen says, worked out once for the GET and for a re-rendered POST."""

    application: App
    sections: list[ScopeSection]
    records_consent: bool  # a grant is recorded on Allow (the request reaches health data)
    need: services.ConsentNeed | None
    text: ConsentText | None
    offline_requested: bool
    force_prompt: bool = False
    new_scopes: list[registry.Scope] = field(default_factory=list)

    @property
    def grant(self) -> ConsentGrant | None:
        return self.need.grant if self.need else None

    @property
    def grant_expired(self) -> bool:
        grant = self.grant
        return bool(grant and grant.expires_at and grant.expires_at <= timezone.now())

    @property
    def extending(self) -> bool:
        """The patient already allowed this app something; the page asks for what is new."""
        return self.grant is not None and not self.grant_expired

    @property
    def can_skip(self) -> bool:
        """An active, unexpired grant covers every requested scope under the current text."""
        return bool(
            self.records_consent
            and self.need is not None
            and self.need.satisfied
            and not self.grant_expired
            and not self.force_prompt
        )

    @property
    def text_html(self) -> SafeString:
        return render_markdown(self.text.body) if self.text else mark_safe("")

    @property
    def has_optional(self) -> bool:
        return any(section.has_checkboxes for section in self.sections)


def build_screen(*, application: App, scopes, user, form=None, prompt: str = "") -> ConsentScreen:
    parsed, _ = registry.parse_many(list(scopes))
    patient_id = getattr(user, "fhir_patient_id", "") or ""
    records = bool(patient_id) and asks_for_patient_data(scopes)
    need = services.consent_needed(patient_id=patient_id, app=application, scopes=list(scopes)) if records else None
    granted = set(need.grant.scopes) if need and need.grant else set()
    has_grant = need is not None and need.grant is not None
    bound = form is not None and form.is_bound
    ticked = set(form.data.getlist("optional_scopes")) if bound and hasattr(form.data, "getlist") else set()
    sections, counter = [], 0
    for index, (data_class, group) in enumerate(registry.grouped_by_data_class(parsed), start=1):
        choices = []
        for scope in group:
            counter += 1
            choices.append(
                ScopeChoice(
                    scope=scope,
                    field_id=f"scope-{counter}",
                    checked=(scope.name in ticked) if bound else True,
                    is_new=has_grant and scope.name not in granted,
                    already_allowed=scope.name in granted,
                )
            )
        sections.append(ScopeSection(data_class=data_class, choices=choices, index=index))
    screen = ConsentScreen(
        application=application,
        sections=sections,
        records_consent=records,
        need=need,
        text=services.current_text() if records else None,
        offline_requested="offline_access" in scopes,
        force_prompt="consent" in prompt.split(),
    )
    if screen.extending:
        screen.new_scopes = [scope for scope in parsed if scope.name not in granted]
    return screen


@dataclass(frozen=True)
class _Decision:
    """What the patient answered, for ``create_authorization_response`` to record."""

    application: App
    patient_id: str
    requested: list[str]
    approved: list[str]
    screen: str = ""  # the key of the screen answered (ConsentScreenShown), when it was recorded


class ConsentAuthorizationView(AuthorizationView):
    """``/oauth/authorize/``: the SMART authorization endpoint with granular, recorded consent.

    GET: the parent's checks (aud, PKCE S256, patient link) run first. When an active grant already
    covers every requested scope under the current text, the code is issued at once, no new grant
    and no ledger event; otherwise the page shows what is new.
    POST: Allow issues the code for the approved subset (required scopes plus ticked optional ones,
    never more than the signed request) and records the grant in the same transaction; Deny
    records a ``denied`` ledger event and sends ``access_denied`` to the app.
    """

    form_class = ConsentForm
    template_name = "oauth2_provider/authorize.html"

    # -- Hooks into django-oauth-toolkit's flow --

    def validate_authorization_request(self, request):
        # Keep the last validated request: DOT's own GET validates it after the parent's checks and
        # then completes its credentials in place (resource, ui_locales) before rendering.
        scopes, credentials = super().validate_authorization_request(request)
        self._validated = (scopes, credentials)
        return scopes, credentials

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs["user"] = self.request.user
        return kwargs

    def get_initial(self):
        initial = super().get_initial()
        if self.oauth2_data:  # a GET about to show the page (empty on a POST)
            self._consent_request = ConsentRequest(
                user_id=self.request.user.pk,
                client_id=initial["client_id"] or "",
                redirect_uri=initial["redirect_uri"] or "",
                scopes=tuple(self.oauth2_data.get("scopes", [])),
            )
            initial["consent_request"] = self._consent_request.sign()
        return initial

    def get_context_data(self, **kwargs):
        form = kwargs.get("form")
        if "application" not in kwargs and form is not None and getattr(form, "request_info", None):
            # A POST re-rendered with errors: rebuild the page from the signed request.
            asked = form.request_info
            application = (
                App.objects.select_related("organization", "organization__tier")
                .filter(client_id=asked.client_id)
                .first()
            )
            if application is not None:
                kwargs["application"] = application
                kwargs["scopes"] = list(asked.scopes)
        context = super().get_context_data(**kwargs)
        application = context.get("application")
        if application is not None:
            context["screen"] = build_screen(
                application=application,
                scopes=context.get("scopes", []),
                user=self.request.user,
                form=form,
                prompt=self.request.GET.get("prompt", ""),
            )
            context["my_apps_url"] = reverse("consent:my-apps")
        return context

    def render_to_response(self, context, **response_kwargs):
        screen = context.get("screen")
        if self.request.method == "GET" and screen is not None:
            if screen.records_consent and screen.text is None:
                return self._refuse_now(
                    screen.application,
                    errors.TemporarilyUnavailableError,
                    "No consent text is published, so the patient cannot be asked; try again later.",
                )
            if screen.can_skip:
                return self._authorize_without_asking(screen.application)
            if screen.records_consent and context.get("form") is not None:
                self._record_screen(screen, context["form"])
        return super().render_to_response(context, **response_kwargs)

    def form_valid(self, form):
        asked = form.request_info
        self._decision = _Decision(
            application=App.objects.select_related("organization").get(client_id=asked.client_id),
            patient_id=self.request.user.fhir_patient_id or "",
            requested=list(asked.scopes),
            approved=list(form.approved_scopes),
            screen=asked.screen,
        )
        return super().form_valid(form)

    def form_invalid(self, form):
        context = self.get_context_data(form=form) if form.request_info else {}
        if "screen" not in context:
            # Altered, expired or another account's page: nothing to re-render, nothing shared.
            return super().render_to_response({"error": {"error": "expired", "description": EXPIRED}}, status=400)
        return self.render_to_response(context, status=400)

    def create_authorization_response(self, request, scopes, credentials, allow):
        decision = getattr(self, "_decision", None)
        if decision is None:  # the screen was skipped: an existing grant covers the request
            return super().create_authorization_response(request, scopes, credentials, allow)
        records = bool(decision.patient_id)
        if not allow:
            if records and asks_for_patient_data(decision.requested):
                services.consent_deny(
                    patient_id=decision.patient_id,
                    app=decision.application,
                    scopes=decision.requested,
                    denied_by=request.user,
                    channel=ConsentGrant.Channel.CONSENT_SCREEN,
                )
                screen_services.consent_screen_decide(key=decision.screen, decision="denied")
            return super().create_authorization_response(request, scopes, credentials, allow)
        with transaction.atomic():
            uri, headers, body, status = super().create_authorization_response(request, scopes, credentials, allow)
            if records and asks_for_patient_data(decision.approved) and _issued_a_code(uri):
                try:
                    services.consent_grant(
                        patient_id=decision.patient_id,
                        app=decision.application,
                        scopes=decision.approved,
                        channel=ConsentGrant.Channel.CONSENT_SCREEN,
                        granted_by=request.user,
                    )
                except (InvalidState, ValidationError) as exc:
                    # Raised inside the transaction: the authorization code goes too.
                    message = exc.messages[0] if isinstance(exc, ValidationError) else str(exc)
                    raise OAuthToolkitError(
                        error=errors.ServerError(description=message, state=credentials.get("state")),
                        redirect_uri=credentials.get("redirect_uri"),
                    ) from exc
                # In the grant's transaction: a screen counts as approved only if the grant stands.
                screen_services.consent_screen_decide(key=decision.screen, decision="approved")
        return uri, headers, body, status

    # -- Internals --

    def _authorize_without_asking(self, application):
        scopes, credentials = self._validated
        try:
            uri, _headers, _body, _status = self.create_authorization_response(
                request=self.request, scopes=" ".join(scopes), credentials=credentials, allow=True
            )
        except OAuthToolkitError as error:
            return self.error_response(error, application)
        return self.redirect(uri, application)

    def _record_screen(self, screen: ConsentScreen, form) -> None:
        """Count this screen as shown (``ConsentScreenShown``) and sign its key into the page, so the
        answer, or a re-render after a form error, names this screen and is never a second one. The
        page is shown the same whether or not the row could be written."""
        asked = getattr(self, "_consent_request", None)
        if asked is None:  # not a page built from a validated request: nothing to count
            return
        shown = screen_services.consent_screen_show(
            patient_id=self.request.user.fhir_patient_id, app=screen.application, scopes=asked.scopes
        )
        if shown is not None:
            form.initial["consent_request"] = replace(asked, screen=str(shown.key)).sign()

    def _refuse_now(self, application, error_class, description: str):
        _scopes, credentials = self._validated
        error = error_class(description=description, state=credentials.get("state"))
        return self.error_response(
            OAuthToolkitError(error=error, redirect_uri=credentials["redirect_uri"]), application
        )


def _issued_a_code(uri: str | None) -> bool:
    """Whether oauthlib answered with a code (it returns, rather than raises, most refusals)."""
    if not uri:
        return False
    parts = urlsplit(uri)
    params = {**parse_qs(parts.fragment), **parse_qs(parts.query)}
    return "code" in params and "error" not in params


# --- My connected apps ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectedApp:
    grant: ConsentGrant

    @property
    def app(self) -> App:
        return self.grant.app

    @property
    def groups(self):
        return grouped_sentences(self.grant.scopes)

    @property
    def data_classes(self) -> list[registry.DataClass]:
        return [registry.DATA_CLASSES[key] for key in self.grant.data_classes if key in registry.DATA_CLASSES]

    @property
    def offline(self) -> bool:
        return "offline_access" in self.grant.scopes

    @property
    def ended_at(self) -> datetime | None:
        return self.grant.ended_at


@login_required
def my_apps(request):
    patient_id = request.user.fhir_patient_id
    if not patient_id:
        return render(request, "consent/no_patient.html", {"nav_section": "my-apps"})
    connected = [ConnectedApp(grant) for grant in patient_selectors.grants_of_patient(patient_id)]
    history = Paginator(patient_selectors.ledger_of_patient(patient_id), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "consent/my_apps.html",
        {
            "active": [c for c in connected if c.grant.is_active],
            "ended": [c for c in connected if not c.grant.is_active],
            "history": history,
            "nav_section": "my-apps",
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def revoke(request, grant_id: int):
    grant = patient_selectors.grant_of_patient(patient_id=request.user.fhir_patient_id, grant_id=grant_id)
    if grant is None:
        raise Http404("No such connected app.")
    if request.method == "POST":
        form = RevokeForm(request.POST)
        if form.is_valid():
            try:
                revoked = services.consent_revoke_by_patient(grant=grant, user=request.user, reason=form.reason_text)
            except NotPermitted as exc:
                return refuse(request, exc)
            if revoked:
                messages.success(
                    request,
                    f"{grant.app.name} no longer has access to your information. It was told that you revoked it.",
                )
            else:
                messages.info(request, f"{grant.app.name}'s access had already ended; nothing changed.")
            return redirect("consent:my-apps")
    else:
        if not grant.is_active:
            messages.info(request, f"{grant.app.name}'s access has already ended; there is nothing to revoke.")
            return redirect("consent:my-apps")
        form = RevokeForm()
    return render(
        request,
        "consent/revoke_confirm.html",
        {"connected": ConnectedApp(grant), "form": form, "nav_section": "my-apps"},
    )


# --- A provider organization's authorization of apps -------------------------------------------


def current_membership(request) -> Membership | None:
    """The membership in the portal's current organization (``request.session["current_org_id"]``
    while the user still belongs to it), else the first one; the portal resolves it the same way."""
    mine = list(partner_selectors.memberships_of(request.user))
    wanted = request.session.get(CURRENT_ORG_SESSION_KEY)
    return next((m for m in mine if m.organization_id == wanted), None) or (mine[0] if mine else None)


def _provider_refusal(membership: Membership | None) -> str | None:
    if membership is None:
        return "Join a provider organization first: providers decide which apps reach their patients' records."
    organization = membership.organization
    if organization.partner_type != Organization.PartnerType.PROVIDER:
        return (
            f"{organization.name} is a {organization.get_partner_type_display().lower()} organization; "
            "only provider organizations decide which apps reach their patients' records."
        )
    return None


@dataclass(frozen=True)
class AppDecisionRow:
    app: App
    authorization: AppAuthorization | None

    @property
    def effective(self) -> str:
        if self.authorization is not None:
            return self.authorization.decision
        return AppAuthorization.Decision.BLOCKED if self.app.is_production else AppAuthorization.Decision.ENABLED

    @property
    def is_default(self) -> bool:
        return self.authorization is None

    @property
    def is_enabled(self) -> bool:
        return self.effective == AppAuthorization.Decision.ENABLED


@login_required
def app_authorizations(request):
    membership = current_membership(request)
    refusal = _provider_refusal(membership)
    if refusal:
        return refuse(request, refusal)
    organization = membership.organization
    page = Paginator(patient_selectors.apps_for_provider(organization), 50).get_page(request.GET.get("page"))
    decisions = patient_selectors.authorizations_of(organization, [app.pk for app in page])
    return render(
        request,
        "consent/app_authorizations.html",
        {
            "organization": organization,
            "membership": membership,
            "can_decide": membership.role in DECIDING_ROLES,
            "page": page,
            "rows": [AppDecisionRow(app, decisions.get(app.pk)) for app in page],
            "environments": patient_selectors.environments_for_provider(organization),
            "nav_section": "app-authorizations",
        },
    )


@login_required
@require_POST
def app_authorization_decide(request, app_id: int):
    membership = current_membership(request)
    refusal = _provider_refusal(membership)
    if refusal:
        return refuse(request, refusal)
    organization = membership.organization
    app = patient_selectors.app_for_provider(organization=organization, app_id=app_id)
    if app is None:
        raise Http404("No such app.")
    target = reverse("consent-org:app-authorizations")
    page = request.POST.get("page", "")
    if page.isdigit():
        target += f"?page={page}"
    form = AppAuthorizationForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose Enable or Block.")
        return redirect(target)
    try:
        services.app_authorization_set(
            organization=organization,
            app=app,
            decision=form.cleaned_data["decision"],
            actor=request.user,
            reason=form.cleaned_data["reason"],
        )
    except NotPermitted as exc:
        return refuse(request, exc)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        verb = "can now reach" if form.cleaned_data["decision"] == "enabled" else "is blocked from"
        messages.success(request, f"{app.name} {verb} the records of {organization.name}'s patients.")
    return redirect(target)
