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
