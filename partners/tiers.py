"""Vocabulary the tiers are written in: endpoint groups, quota windows and the security questionnaire.

Kept out of models.py so that settings-free code (docs generation, forms) can import it cheaply.
"""

from dataclasses import dataclass

# Endpoint groups: every API view belongs to one, and each tier sets a quota per group.
ENDPOINT_GROUPS = {
    "fhir_read": "FHIR reads (GET /fhir/r4/<Resource>/<id>)",
    "fhir_search": "FHIR searches (GET /fhir/r4/<Resource>?...)",
    "writes": "Writes (POST to workflow APIs)",
    "eligibility": "Eligibility checks (high-cost, simulated payer round trip)",
    "token": "Token endpoint (/oauth/token/)",
}

# Quota windows, in seconds: a burst window, a per-minute window and a daily quota.
QUOTA_WINDOWS = {"burst": 1, "per_minute": 60, "per_day": 86_400}
# Within its organization's per-minute quota, one access token may use at most half, and all requests
# about one patient (whichever app makes them) at most a quarter: one runaway client or one patient's
# record never takes the whole organization's share. A group's quota may set these explicitly.
TOKEN_SHARE = 0.5
PATIENT_SHARE = 0.25
# Every key a group's quota may set: the windows, and the token's and the patient's shares.
QUOTA_KEYS = (*QUOTA_WINDOWS, "per_token_per_minute", "per_patient_per_minute")


def effective_quotas(tier_quotas: dict, overrides: dict, group: str) -> dict:
    """The windows in force for ``group``: the tier's, with an organization's overrides on top."""
    quotas = dict(tier_quotas.get(group) or {})
    quotas.update((overrides or {}).get(group) or {})
    per_minute = quotas.get("per_minute")
    if per_minute:
        quotas.setdefault("per_token_per_minute", max(1, int(per_minute * TOKEN_SHARE)))
        quotas.setdefault("per_patient_per_minute", max(1, int(per_minute * PATIENT_SHARE)))
    return quotas


@dataclass(frozen=True)
class Question:
    key: str
    text: str


SECURITY_QUESTIONNAIRE = (
    Question("encryption_at_rest", "Is all patient data you store encrypted at rest?"),
    Question("encryption_in_transit", "Do all your services accept only TLS 1.2 or newer?"),
    Question("access_reviews", "Do you review who can reach patient data at least every quarter?"),
    Question("incident_response", "Do you have a written incident-response plan with a named contact?"),
    Question("secret_storage", "Are client secrets and private keys kept in a secrets manager, never in code?"),
    Question("minimum_necessary", "Does your app request only the scopes it uses (minimum necessary)?"),
)

BAA_VERSION = "2026-01"
