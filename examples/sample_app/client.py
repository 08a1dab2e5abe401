"""The sample partner app: a patient-facing SMART app that does everything certification checks.

- It signs the patient in with authorization code and PKCE (S256), checks ``state`` and the issuer
  of the response (RFC 9207), and sends ``aud`` (the FHIR base URL).
- It asks for the scopes it uses and no others, and calls only what the scopes it was granted allow
  (the patient may untick optional ones on the consent screen).
- It refreshes its access token (``offline_access``) instead of sending the patient back to sign-in.
- On a 429 it waits the ``Retry-After`` the platform sent, then tries again.
- It verifies every webhook's Standard Webhooks signature and answers 400 to one that fails.
- Once it learns a patient revoked its access (a ``consent.revoked`` event, a consent refusal, or a
  refresh token refused after a 401), it stops calling for that patient.
- Its redirect URI is https (registered with the app; the redirect is intercepted by the user agent).

Only the standard library, ``requests`` and ``standardwebhooks``. The person in the browser (signing
in as a sandbox patient and approving the consent screen) is not part of an app: it is the
``user_agent`` callable, given the authorization URL and returning the URL the browser was sent back to
(see ``sandbox_patient.SandboxPatient`` for one that drives the sandbox over HTTP).
"""

import base64
import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

logger = logging.getLogger("sample_app")

UserAgent = Callable[[str], str]

# The refusals that mean the patient's consent no longer covers this app.
CONSENT_ENDED = frozenset({"consent_revoked", "consent_expired", "consent_required"})


class OAuthError(Exception):
    def __init__(self, error: str, description: str = ""):
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description


@dataclass
class AppSettings:
    """What the app is given when it is registered (it registers nothing itself)."""

    base_url: str  # the platform, e.g. http://127.0.0.1:8000
    client_id: str
    client_secret: str
    redirect_uri: str  # registered with the app; https
    webhook_secret: str = ""  # the subscription's signing secret (whsec_...)
    timeout: float = 10.0

    @property
    def fhir_base(self) -> str:
        return f"{self.base_url.rstrip('/')}/fhir/r4"

    @property
    def issuer(self) -> str:
        return f"{self.base_url.rstrip('/')}/oauth"


def problem_code(response: requests.Response) -> str:
    """The platform's problem code of a refusal, from a problem+json body or a FHIR OperationOutcome."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    if isinstance(body.get("code"), str):
        return body["code"]
    for extension in body.get("extension") or []:
        if str(extension.get("url", "")).endswith("/problem-code"):
            return str(extension.get("valueCode", ""))
    return ""


def retry_after(response: requests.Response, default: float = 1.0) -> float:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else default


class SampleApp:
    """One app instance for one signed-in patient at a time."""

    # Exactly what read_record() uses: the patient's record and observations, the patient in context,
    # and offline access so the token can be refreshed.
    scopes = ("launch/patient", "patient/Patient.rs", "patient/Observation.rs", "offline_access")
    max_attempts = 4  # per call, 429 retries included

    def __init__(self, settings: AppSettings, *, user_agent: UserAgent, session=None, sleep=time.sleep):
        self.settings = settings
        self.user_agent = user_agent
        self.session = session or requests.Session()
        self.sleep = sleep
        self.token: dict | None = None
        self.granted: set[str] = set()
        self.patient_id: str | None = None
        self.access_ended: set[str] = set()  # patients who revoked (or whose access otherwise ended)
        self.rate_limited = 0  # 429s received
        self.calls = 0  # API requests sent
        self.seen_webhooks: set[str] = set()
        self.events: list[dict] = []
        self._lock = threading.Lock()

    # --- OAuth 2.0: authorization code with PKCE, refresh -------------------------------------------

    def requested_scopes(self) -> list[str]:
        return list(self.scopes)

    def authorization_request(self) -> tuple[str, str, str]:
        """(authorization URL, state, code_verifier)."""
        verifier = secrets.token_urlsafe(64)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state = secrets.token_urlsafe(24)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.settings.client_id,
                "redirect_uri": self.settings.redirect_uri,
                "scope": " ".join(self.requested_scopes()),
                "state": state,
                "aud": self.settings.fhir_base,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        return f"{self.settings.base_url.rstrip('/')}/oauth/authorize/?{query}", state, verifier

    def authorize(self) -> dict:
        """Send the patient through sign-in and consent; exchange the code for tokens."""
        url, state, verifier = self.authorization_request()
        callback = self.user_agent(url)
        params = {key: values[0] for key, values in parse_qs(urlsplit(callback).query).items()}
        if params.get("state") != state:
            raise OAuthError("invalid_state", "The callback's state is not the one this app sent.")
        if "iss" in params and params["iss"] != self.settings.issuer:
            raise OAuthError("invalid_issuer", f"The callback came from {params['iss']}, not {self.settings.issuer}.")
        if "error" in params:
            raise OAuthError(params["error"], params.get("error_description", ""))
        return self._token_request(
            {
                "grant_type": "authorization_code",
                "code": params["code"],
                "redirect_uri": self.settings.redirect_uri,
                "code_verifier": verifier,
            }
        )

    def refresh(self) -> dict:
        if not self.token or not self.token.get("refresh_token"):
            raise OAuthError("no_refresh_token", "Ask for offline_access to get a refresh token.")
        return self._token_request({"grant_type": "refresh_token", "refresh_token": self.token["refresh_token"]})

    def _token_request(self, data: dict) -> dict:
        url = f"{self.settings.base_url.rstrip('/')}/oauth/token/"
        auth = (self.settings.client_id, self.settings.client_secret)
        for attempt in range(self.max_attempts):
            response = self.session.post(url, data=data, auth=auth, timeout=self.settings.timeout)
            if response.status_code == 429 and attempt + 1 < self.max_attempts:
                self.wait_after_429(response)
                continue
            break
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200:
            raise OAuthError(body.get("error", str(response.status_code)), body.get("error_description", ""))
        self.token = {**(self.token or {}), **body}
        self.granted = set(body.get("scope", "").split())
        self.patient_id = body.get("patient") or self.patient_id
        return body

    # --- The API ------------------------------------------------------------------------------------------

    def may_call_for(self, patient_id: str | None) -> bool:
        return patient_id not in self.access_ended

    def learn_access_ended(self, patient_id: str | None) -> None:
        if patient_id:
            with self._lock:
                self.access_ended.add(patient_id)
            logger.info("access to Patient/%s ended: no more calls for them", patient_id)

    def wait_after_429(self, response: requests.Response) -> None:
        self.sleep(retry_after(response))

    def call(self, path: str, params: dict | None = None) -> requests.Response | None:
        """GET ``path`` (under the base URL) for the patient in context; None when the app does not call
        because that patient's access has ended."""
        patient = self.patient_id
        if not self.may_call_for(patient):
            return None
        refreshed = False
        response = None
        for attempt in range(self.max_attempts):
            self.calls += 1
            response = self.session.get(
                f"{self.settings.base_url.rstrip('/')}{path}",
                params=params,
                headers={"Authorization": f"Bearer {self.token['access_token']}", "Accept": "application/fhir+json"},
                timeout=self.settings.timeout,
            )
            if response.status_code == 429:
                self.rate_limited += 1
                if attempt + 1 < self.max_attempts:
                    self.wait_after_429(response)
                    continue
                return response
            if response.status_code == 401 and not refreshed:
                # Expired, or revoked with the patient's consent: a refresh tells the two apart.
                refreshed = True
                try:
                    self.refresh()
                except OAuthError:
                    self.learn_access_ended(patient)
                    return response
                if not self.may_call_for(patient):
                    return response
                continue
            if response.status_code == 403 and problem_code(response) in CONSENT_ENDED:
                self.learn_access_ended(patient)
            return response
        return response

    def read_record(self) -> dict:
        """The patient's demographics and observations, as far as the granted scopes allow."""
        found = {}
        if "patient/Patient.rs" in self.granted:
            response = self.call(f"/fhir/r4/Patient/{self.patient_id}")
            found["patient"] = response.status_code if response is not None else None
        if "patient/Observation.rs" in self.granted:
            response = self.call("/fhir/r4/Observation", {"patient": self.patient_id})
            found["observations"] = response.status_code if response is not None else None
        return found

    def provoke_rate_limit(self, *, max_calls: int = 40) -> bool:
        """The sandbox's rate-limit step: read the patient quickly until a 429 comes back (and is handled
        as every 429 is). True when one came."""
        before = self.rate_limited
        for _ in range(max_calls):
            self.call(f"/fhir/r4/Patient/{self.patient_id}")
            if self.rate_limited > before or not self.may_call_for(self.patient_id):
                break
        return self.rate_limited > before

    # --- Webhooks -------------------------------------------------------------------------------------

    def receive_webhook(self, headers: dict, body: bytes) -> int:
        """The status to answer a webhook with: 400 when its signature does not verify, 204 otherwise
        (a duplicate, recognised by its ``webhook-id``, is acknowledged and not handled twice)."""
        try:
            message = Webhook(self.settings.webhook_secret).verify(body, headers)
        except (WebhookVerificationError, ValueError):
            return 400
        message_id = {k.lower(): v for k, v in headers.items()}.get("webhook-id", "")
        with self._lock:
            if message_id in self.seen_webhooks:
                return 204
            self.seen_webhooks.add(message_id)
        self.handle_event(message)
        return 204

    def handle_event(self, message: dict) -> None:
        self.events.append(message)
        if message.get("type") in {"consent.revoked", "consent.expired"}:
            patient = str((message.get("data") or {}).get("patient", ""))
            self.learn_access_ended(patient.removeprefix("Patient/"))

    # --- The whole flow ---------------------------------------------------------------------------------

    def run(self) -> dict:
        """Sign in, read, refresh, read, and the rate-limit step: the recorded behaviour certification
        looks at (revoking consent and the webhook endpoint are the rest)."""
        self.authorize()
        first = self.read_record()
        self.refresh()
        second = self.read_record()
        provoked = self.provoke_rate_limit()
        return {"first": first, "second": second, "rate_limited": provoked}
