"""Forms of the patient-facing consent pages.

The consent screen's form is django-oauth-toolkit's ``AllowForm`` plus two things:

- ``consent_request``: what the app asked for, as the server validated it when it showed the page,
  signed (``django.core.signing``) and bound to the signed-in user. The POST is trusted for the
  patient's choices only, never for what was asked: the hidden ``scope`` field is ignored.
- ``optional_scopes``: the checkboxes, one per optional scope that was asked for (ticked by
  default). Anything else ticked is refused.
"""

from dataclasses import dataclass

from django import forms
from django.core import signing
from django.core.exceptions import ValidationError
from oauth2_provider.forms import AllowForm

from partners import scopes as registry

SIGNING_SALT = "consent.screen.request"
REQUEST_MAX_AGE = 60 * 60  # seconds a consent page stays answerable
EXPIRED = (
    "This approval page expired or was changed after it was shown. Go back to the app and connect again; "
    "nothing was shared."
)


def is_optional(name: str) -> bool:
    """May the patient untick this scope? Unknown names (never in a validated request) are not."""
    try:
        return registry.parse(name).optional
    except registry.UnknownScope:
        return False


@dataclass(frozen=True)
class ConsentRequest:
    """What the app asked for, as the authorization endpoint validated it on the GET."""

    user_id: int
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    # The shown screen's key (``ConsentScreenShown``): the POST, or a page re-rendered after a form
    # error, names the screen it answers. Empty when the screen could not be recorded.
    screen: str = ""

    def sign(self) -> str:
        payload = {"u": self.user_id, "c": self.client_id, "r": self.redirect_uri, "s": list(self.scopes)}
        if self.screen:
            payload["k"] = self.screen
        return signing.dumps(payload, salt=SIGNING_SALT, compress=True)

    @classmethod
    def unsign(cls, value: str, *, user) -> "ConsentRequest | None":
        """The request signed into the page, or ``None`` when it was altered, expired, or signed for
        another account."""
        try:
            data = signing.loads(value or "", salt=SIGNING_SALT, max_age=REQUEST_MAX_AGE)
        except signing.BadSignature:  # includes SignatureExpired
            return None
        if not isinstance(data, dict) or user is None or not user.is_authenticated or data.get("u") != user.pk:
            return None
        scopes = data.get("s")
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            return None
        return cls(user.pk, str(data.get("c", "")), str(data.get("r", "")), tuple(scopes), str(data.get("k", "")))


class ConsentForm(AllowForm):
    consent_request = forms.CharField(widget=forms.HiddenInput)
    optional_scopes = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"invalid_choice": "“%(value)s” was not asked for by the app, so it cannot be allowed."},
    )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.request_info: ConsentRequest | None = None
        self.approved_scopes: list[str] = []
        if self.is_bound:
            self.request_info = ConsentRequest.unsign(self.data.get(self.add_prefix("consent_request"), ""), user=user)
        requested = self.request_info.scopes if self.request_info else ()
        self.fields["optional_scopes"].choices = [(name, name) for name in requested if is_optional(name)]

    def clean_consent_request(self):
        if self.request_info is None:
            raise ValidationError(EXPIRED, code="expired")
        return self.cleaned_data["consent_request"]

    def clean(self):
        cleaned = super().clean()
        asked = self.request_info
        if asked is None:
            return cleaned
        if cleaned.get("client_id") != asked.client_id or cleaned.get("redirect_uri") != asked.redirect_uri:
            raise ValidationError(EXPIRED, code="altered")
        ticked = set(cleaned.get("optional_scopes") or ())
        # Never more than was asked: required scopes as asked, optional ones only when ticked.
        self.approved_scopes = [name for name in asked.scopes if not is_optional(name) or name in ticked]
        if cleaned.get("allow") and not self.approved_scopes:
            raise ValidationError(
                "You unticked everything the app asked for. Tick what you want to allow, or choose Deny.",
                code="nothing_allowed",
            )
        # What DOT hands to oauthlib: the approved subset (the posted ``scope`` is never trusted).
        cleaned["scope"] = " ".join(self.approved_scopes if cleaned.get("allow") else asked.scopes)
        return cleaned


class RevokeForm(forms.Form):
    """Why the patient revokes, chosen from fixed answers: the reason travels to the app's developer in
    the ``consent.revoked`` event, so a free-text box (where health details could end up) is avoided."""

    REASONS = {
        "": "",
        "not_used": "I no longer use this app.",
        "too_much": "It can see more than I want it to.",
        "not_trusted": "I do not trust this app any more.",
    }
    reason = forms.ChoiceField(
        label="Why are you revoking it? (optional)",
        required=False,
        initial="",
        choices=[
            ("", "I prefer not to say"),
            ("not_used", "I no longer use this app"),
            ("too_much", "It can see more than I want it to"),
            ("not_trusted", "I do not trust this app any more"),
        ],
        widget=forms.RadioSelect,
        help_text="The app's developer is told the answer you choose here.",
    )

    @property
    def reason_text(self) -> str:
        return self.REASONS.get(self.cleaned_data.get("reason") or "", "")


class AppAuthorizationForm(forms.Form):
    decision = forms.ChoiceField(choices=[("enabled", "Enable"), ("blocked", "Block")])
    reason = forms.CharField(required=False, max_length=1000)
