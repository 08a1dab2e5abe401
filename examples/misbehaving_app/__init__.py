"""The sample app's misbehaving twin: it fails exactly five certification checks.

It still signs in with authorization code and PKCE and refreshes its token (so it passes
``pkce_authorization_code`` and ``token_refresh``), but:

- it asks for scopes it never uses (``least_privilege_scopes``);
- it retries a 429 at once, ignoring ``Retry-After`` (``honours_retry_after``);
- its webhook receiver accepts anything, signed or not (``webhook_signature``);
- it keeps calling for a patient after the patient revoked its access (``stops_after_revocation``);
- it registers an http redirect URI (``https_redirect_uris``: the registration, see ``REDIRECT_URI``).
"""

from examples.sample_app.client import SampleApp

# What it registers: plain http on a public host, so an authorization code can be read on the way.
REDIRECT_URI = "http://misbehaving-app.example/callback"


class MisbehavingApp(SampleApp):
    # Coverage and appointments "in case we need them later": never called.
    scopes = (*SampleApp.scopes, "patient/Coverage.rs", "patient/Appointment.rs")

    def wait_after_429(self, response) -> None:
        pass  # straight back in, whatever Retry-After said

    def receive_webhook(self, headers: dict, body: bytes) -> int:
        return 200  # no signature check: anyone can post anything here

    def handle_event(self, message: dict) -> None:
        self.events.append(message)  # read, and ignored: a revocation changes nothing

    def may_call_for(self, patient_id) -> bool:
        return True

    def learn_access_ended(self, patient_id) -> None:
        pass


__all__ = ["REDIRECT_URI", "MisbehavingApp"]
