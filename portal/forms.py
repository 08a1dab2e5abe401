"""Portal forms: they check the shape of the input; the rules live in ``partners.services``."""

import json
from datetime import UTC, datetime, time, timedelta

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.utils import timezone

from api.denials import well_formed as well_formed_correlation_id
from api.endpoints import InvalidPattern, Pattern
from api.models import AccessEvent
from partners import events
from partners.models import App, Membership, Organization
from partners.tiers import BAA_VERSION, SECURITY_QUESTIONNAIRE
from partners.webhook_services import SUBSCRIBABLE_EVENT_TYPES
from portal.models import ChangelogEntry


def add_service_errors(form: forms.Form, exc: ValidationError) -> None:
    """Put a service's ``ValidationError`` on the form: each key on its field when the form has
    one, everything else at the top of the form."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc.messages)
        return
    for field, field_messages in exc.message_dict.items():
        target = field if field in form.fields else None
        if target is None and field not in ("__all__", None):
            # A model field the form does not show (client_id, ...): keep its name visible.
            field_messages = [f"{field.replace('_', ' ').capitalize()}: {m}" for m in field_messages]
        form.add_error(target, field_messages)


def _url_field(label: str, **kwargs) -> forms.URLField:
    return forms.URLField(
        label=label,
        required=False,
        max_length=kwargs.pop("max_length", 500),
        assume_scheme="https",
        widget=forms.URLInput(attrs={"placeholder": "https://", "inputmode": "url"}),
        **kwargs,
    )


# --- Accounts --------------------------------------------------------------------------------


class SignupForm(forms.Form):
    email = forms.EmailField(
        label="Email address",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )
    first_name = forms.CharField(
        label="First name",
        max_length=150,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "given-name"}),
    )
    last_name = forms.CharField(
        label="Last name",
        max_length=150,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "family-name"}),
    )
    password = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 10 characters; not a common password and not only digits.",
    )
    password_confirm = forms.CharField(
        label="Repeat the password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self):
        cleaned = super().clean()
        password, confirm = cleaned.get("password"), cleaned.get("password_confirm")
        if password and confirm and password != confirm:
            self.add_error("password_confirm", "The two passwords differ.")
        return cleaned


class EmailAuthenticationForm(AuthenticationForm):
    """Django's login form with the email address as the user name (``USERNAME_FIELD = "email"``)."""

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        self.fields["username"].label = "Email address"
        self.fields["username"].widget = forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True})

    def clean_username(self):
        # Addresses are stored lower-case; the default backend looks them up exactly.
        return (self.cleaned_data.get("username") or "").strip().lower()


# --- Organizations ---------------------------------------------------------------------------


class OrganizationForm(forms.Form):
    name = forms.CharField(label="Organization name", max_length=120)
    slug = forms.SlugField(
        label="Address",
        max_length=60,
        help_text="Lower-case letters, digits and hyphens; it identifies your organization and cannot be reused.",
        widget=forms.TextInput(attrs={"data-slug-from": "id_name", "autocapitalize": "none", "spellcheck": "false"}),
    )
    partner_type = forms.ChoiceField(
        label="Partner type", choices=Organization.PartnerType.choices, widget=forms.RadioSelect
    )
    website = _url_field("Website", max_length=300)


class InviteForm(forms.Form):
    email = forms.EmailField(label="Email address", max_length=254)
    role = forms.ChoiceField(label="Role", choices=Membership.Role.choices, initial=Membership.Role.DEVELOPER)

    def __init__(self, *args, inviter: Membership | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if inviter is None or inviter.role != Membership.Role.OWNER:
            # Only an owner may invite another owner; do not offer what the service would refuse.
            self.fields["role"].choices = [c for c in Membership.Role.choices if c[0] != Membership.Role.OWNER]


# --- Apps ------------------------------------------------------------------------------------

GRANT_TYPE_CHOICES = [
    (App.GRANT_AUTHORIZATION_CODE, "Authorization code with PKCE (patients and clinicians sign in)"),
    (App.GRANT_CLIENT_CREDENTIALS, "Client credentials (backend services)"),
]
CLIENT_TYPE_CHOICES = [
    (App.CLIENT_CONFIDENTIAL, "Confidential (a server that can keep a secret)"),
    (App.CLIENT_PUBLIC, "Public (a browser or mobile app, no secret)"),
]


class AppEditForm(forms.Form):
    name = forms.CharField(label="App name", max_length=255)
    redirect_uris = forms.CharField(
        label="Redirect URIs",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "autocapitalize": "none"}),
        help_text="One per line, each exactly as your app sends it: absolute, no wildcards, no #fragment. "
        "Production apps need https (http only for loopback addresses such as http://127.0.0.1).",
    )
    description = forms.CharField(
        label="Description",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Shown to patients on the consent screen: say plainly what the app does.",
    )
    homepage_url = _url_field("Homepage URL")
    privacy_policy_url = _url_field("Privacy-policy URL")


class AppCreateForm(AppEditForm):
    environment = forms.ChoiceField(
        label="Environment",
        choices=App.Environment.choices,
        initial=App.Environment.SANDBOX,
        widget=forms.RadioSelect,
        help_text="Sandbox apps reach synthetic data only. Production apps need the Production tier.",
    )
    client_type = forms.ChoiceField(
        label="Client type",
        choices=CLIENT_TYPE_CHOICES,
        initial=App.CLIENT_CONFIDENTIAL,
        widget=forms.RadioSelect,
    )
    grant_types = forms.MultipleChoiceField(
        label="Grant types",
        choices=GRANT_TYPE_CHOICES,
        initial=[App.GRANT_AUTHORIZATION_CODE],
        widget=forms.CheckboxSelectMultiple,
    )

    field_order = [
        "name",
        "environment",
        "client_type",
        "grant_types",
        "redirect_uris",
        "description",
        "homepage_url",
        "privacy_policy_url",
    ]


class AppKeysForm(forms.Form):
    """SMART Backend Services keys: the form turns the pasted text into JSON; the rules for the keys
    themselves are ``partners.services.app_set_keys``'s."""

    jwks = forms.CharField(
        label="JWK Set",
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "autocapitalize": "none"}),
        help_text='Your public keys as a JWK Set, <code>{"keys": [...]}</code>: RSA (RS384, 2048 bits or more) '
        "or EC P-384 (ES384), each with a <code>kid</code>. Public keys only: never paste a private key.",
    )
    jwks_url = _url_field(
        "JWKS URL",
        help_text="Or the https address where your app publishes its JWK Set; we fetch it when your app "
        "authenticates. Leave both empty to remove the keys.",
    )

    def clean_jwks(self) -> dict | None:
        text = self.cleaned_data["jwks"].strip()
        if not text:
            return None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValidationError(f"This is not valid JSON ({exc}).") from exc
        if not isinstance(data, dict):
            raise ValidationError('A JWK Set is a JSON object: {"keys": [...]}.')
        return data


class DateRangeForm(forms.Form):
    """A date range from the query string, both ends included; either end may be left out."""

    since = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return cleaned


class AccessLogFilterForm(DateRangeForm):
    """The access log's filters (from the query string): a date range, whole UTC days, both ends
    included, and an outcome."""

    outcome = forms.ChoiceField(
        label="Outcome", required=False, choices=[("", "Any outcome"), *AccessEvent.Outcome.choices]
    )

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return cleaned

    def bounds(self) -> dict:
        """``since`` (inclusive) and ``until`` (exclusive) as UTC datetimes, and the outcome."""
        data = self.cleaned_data
        since, until = data.get("since"), data.get("until")
        return {
            "since": datetime.combine(since, time.min, tzinfo=UTC) if since else None,
            "until": datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC) if until else None,
            "outcome": data.get("outcome", ""),
        }


# --- Tiers -----------------------------------------------------------------------------------

YES_NO = [("yes", "Yes"), ("no", "No")]


class UpgradeRequestForm(forms.Form):
    """The request for the next tier; the questionnaire and BAA parts appear when that tier asks for them."""

    justification = forms.CharField(
        label="Why do you need the next tier?",
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="What your app does, who uses it and which capabilities you need.",
    )
    evidence_links = forms.CharField(
        label="Evidence links",
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "autocapitalize": "none"}),
        help_text="One web address per line: security policies, audit reports, certifications.",
    )

    def __init__(self, *args, to_tier=None, organization=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.asks_questionnaire = bool(to_tier and to_tier.requires_security_questionnaire)
        self.asks_baa = bool(to_tier and to_tier.requires_baa and organization and organization.baa_signed_at is None)
        previous = (organization.security_questionnaire if organization else None) or {}
        if self.asks_questionnaire:
            for question in SECURITY_QUESTIONNAIRE:
                earlier = previous.get(question.key) or {}
                self.fields[f"q_{question.key}"] = forms.ChoiceField(
                    label=question.text,
                    choices=YES_NO,
                    widget=forms.RadioSelect,
                    initial=earlier.get("answer"),
                    error_messages={"required": "Answer yes or no."},
                )
                self.fields[f"q_{question.key}_notes"] = forms.CharField(
                    label="Notes",
                    required=False,
                    max_length=1000,
                    initial=earlier.get("notes", ""),
                    widget=forms.TextInput(attrs={"placeholder": "Optional: how, or what you plan instead"}),
                )
        if self.asks_baa:
            self.fields["baa_accepted"] = forms.BooleanField(
                label="On behalf of my organization, I accept the business associate agreement "
                f"(version {BAA_VERSION}).",
                required=True,
                error_messages={
                    "required": f"The {to_tier.name} tier needs the business associate agreement accepted."
                },
            )

    def question_rows(self):
        """(answer field, notes field) per question, for the template."""
        if not self.asks_questionnaire:
            return []
        return [(self[f"q_{q.key}"], self[f"q_{q.key}_notes"]) for q in SECURITY_QUESTIONNAIRE]

    def questionnaire_answers(self) -> dict | None:
        if not self.asks_questionnaire:
            return None
        return {
            q.key: {
                "answer": self.cleaned_data.get(f"q_{q.key}", ""),
                "notes": self.cleaned_data.get(f"q_{q.key}_notes", ""),
            }
            for q in SECURITY_QUESTIONNAIRE
        }


# --- Diagnostics -----------------------------------------------------------------------------


class NoEchoTextarea(forms.Textarea):
    """A textarea that never renders its value back: a pasted token must not reappear in a page."""

    def format_value(self, value):
        return None


class TokenInspectForm(forms.Form):
    token = forms.CharField(
        label="Access or refresh token",
        max_length=4096,
        widget=NoEchoTextarea(
            attrs={"rows": 3, "spellcheck": "false", "autocapitalize": "none", "autocomplete": "off"}
        ),
        help_text="Paste the token exactly as your app received it. We look it up by its hash; it is never stored, "
        "logged or shown back.",
        error_messages={
            "required": "Paste a token to inspect.",
            "max_length": "That is longer than any token we issue.",
        },
    )


class DenialLookupForm(forms.Form):
    """A correlation id, in the shape the platform accepts for ``X-Request-ID``."""

    correlation_id = forms.CharField(
        label="Correlation id",
        max_length=128,
        widget=forms.TextInput(attrs={"spellcheck": "false", "autocapitalize": "none", "autocomplete": "off"}),
        help_text="From the refused response: its X-Request-ID header, or correlation_id in the body.",
        error_messages={
            "required": "Enter the correlation id of the refused request.",
            "max_length": "A correlation id is at most 128 characters.",
        },
    )

    def clean_correlation_id(self):
        value = well_formed_correlation_id(self.cleaned_data["correlation_id"])
        if value is None:
            raise ValidationError(
                "That is not a correlation id: 8 to 128 letters, digits, dots, underscores, colons or hyphens, "
                "starting with a letter or digit (e.g. 7f9c2d0e4b8a4f0e9a51c3d2b6e1a0f4)."
            )
        return value


# --- Webhooks --------------------------------------------------------------------------------


class WebhookSubscriptionForm(forms.Form):
    """A subscription's fields; whether the URL may be sent to is ``partners.webhook_services``'s to say."""

    url = forms.URLField(
        label="Endpoint URL",
        max_length=2000,
        assume_scheme="https",
        widget=forms.URLInput(attrs={"placeholder": "https://", "inputmode": "url", "spellcheck": "false"}),
        help_text="Where we POST events: https (required for production apps), on a public address. Loopback, "
        "private, link-local and cloud-metadata addresses are refused.",
    )
    event_types = forms.MultipleChoiceField(
        label="Event types",
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one event type."},
    )
    description = forms.CharField(
        label="Description",
        max_length=200,
        required=False,
        help_text="For your team: what receives these events.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.event_catalogue = [events.get(name) for name in SUBSCRIBABLE_EVENT_TYPES]
        self.fields["event_types"].choices = [(event.name, event.name) for event in self.event_catalogue]

    def event_type_rows(self):
        """(checkbox, event type) pairs, so the template shows each type's summary beside its box."""
        return list(zip(self["event_types"], self.event_catalogue, strict=True))


OVERLAP_CHOICES = [
    (24, "24 hours (recommended)"),
    (1, "1 hour"),
    (72, "3 days"),
    (168, "7 days"),
    (0, "None: the old secret stops at once"),
]


class WebhookRotateForm(forms.Form):
    overlap_hours = forms.TypedChoiceField(
        label="Keep signing with the old secret too for",
        choices=OVERLAP_CHOICES,
        coerce=int,
        initial=24,
        widget=forms.RadioSelect,
        help_text="During the overlap every message carries two signatures, one per secret, so your endpoint keeps "
        "verifying while you deploy the new secret.",
    )


class WebhookDisableForm(forms.Form):
    reason = forms.CharField(
        label="Reason",
        max_length=300,
        required=False,
        help_text="Optional: why, for whoever looks at it later.",
    )


class UTCDateTimeField(forms.DateTimeField):
    """A date and time typed without a zone, read as UTC (what the page says) whatever the server's zone."""

    def to_python(self, value):
        with timezone.override(UTC):
            return super().to_python(value)


class WebhookReplayForm(forms.Form):
    since = UTCDateTimeField(
        label="Resend events since (UTC)",
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Every event sent to this subscription from then on is sent again, in sequence order, with its "
        "original sequence number. At most 30 days ago.",
    )


class ChangelogFilterForm(DateRangeForm):
    """The changelog page's and feed's filters, from the query string; an empty field filters nothing."""

    field_order = ["version", "kind", "endpoint", "since", "until"]

    version = forms.ChoiceField(
        label="Version",
        required=False,
        choices=[("", "Every version"), *ChangelogEntry.Version.choices],
        error_messages={"invalid_choice": "“%(value)s” is not a version the changelog knows: pick one from the list."},
    )
    kind = forms.ChoiceField(
        label="Kind",
        required=False,
        choices=[("", "Every kind"), *ChangelogEntry.Kind.choices],
        error_messages={"invalid_choice": "“%(value)s” is not a kind of change: pick one from the list."},
    )
    endpoint = forms.CharField(
        label="Endpoint",
        required=False,
        max_length=300,
        help_text="A route, with or without a method: <code>/api/v1/visits</code>, "
        "<code>GET /api/v1/visits/{visit_id}</code>.",
        widget=forms.TextInput(attrs={"list": "changelog-endpoints", "placeholder": "/api/v1/visits"}),
    )

    def clean_endpoint(self) -> Pattern | None:
        text = self.cleaned_data.get("endpoint", "").strip()
        if not text:
            return None
        try:
            return Pattern.parse(text)
        except InvalidPattern as exc:
            raise ValidationError(str(exc)) from exc

    def filters(self) -> dict:
        data = self.cleaned_data
        return {key: data.get(key) or default for key, default in FILTER_DEFAULTS.items()}

    def is_filtered(self) -> bool:
        return any(self.data.get(key) for key in FILTER_DEFAULTS)


FILTER_DEFAULTS = {"version": "", "kind": "", "endpoint": None, "since": None, "until": None}
