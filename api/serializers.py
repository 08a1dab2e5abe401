"""Serializers of the platform endpoints, and of the problem shape for the OpenAPI document."""

from rest_framework import serializers

from api import errors
from consent.selectors import grant_end, grant_state
from partners.models import App, Organization


class ProblemFieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField(allow_null=True, help_text="The field as a path: items[1].qty; null for the body.")
    pointer = serializers.CharField(help_text="RFC 6901 JSON pointer into the request body: #/items/1/qty.")
    message = serializers.CharField()
    code = serializers.CharField()


class ProblemSerializer(serializers.Serializer):
    """RFC 9457 problem details, as every error on /api/ is sent (``application/problem+json``)."""

    type = serializers.URLField(help_text="The error's documentation page: <base>/docs/errors/<code>/.")
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField(help_text="What happened this time.")
    instance = serializers.CharField(help_text="The request path.")
    # A string, not an enum: new codes are added over time (docs/versioning.md), and an enum would make
    # each new code a breaking change to every published version. The catalogue is /docs/errors/.
    code = serializers.CharField(
        help_text="The error's code in the catalogue (/docs/errors/<code>/): never renamed or reused. New codes "
        "are added over time; treat one you do not know by its HTTP status."
    )
    correlation_id = serializers.CharField(help_text="Equals the X-Request-ID response header; quote it to support.")
    layer = serializers.ChoiceField(choices=errors.LAYERS, help_text="The layer that refused the request.")
    fix = serializers.CharField(help_text="What to do next.")
    errors = ProblemFieldErrorSerializer(many=True, required=False, help_text="validation_error only.")


class TokenAppSerializer(serializers.Serializer):
    name = serializers.CharField()
    client_id = serializers.CharField()
    environment = serializers.ChoiceField(choices=App.Environment.choices)


class TokenOrganizationSerializer(serializers.Serializer):
    name = serializers.CharField()
    slug = serializers.SlugField()
    status = serializers.ChoiceField(choices=Organization.Status.choices)
    partner_type = serializers.ChoiceField(choices=Organization.PartnerType.choices)
    suspension_reason = serializers.CharField(allow_null=True)


class TokenLifetimesSerializer(serializers.Serializer):
    patient_access_token = serializers.IntegerField(help_text="Seconds.")
    system_access_token = serializers.IntegerField(help_text="Seconds; SMART caps it at 300.")
    refresh_token = serializers.IntegerField(help_text="Seconds.")


class TokenTierSerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    rank = serializers.IntegerField()
    write_access = serializers.BooleanField()
    token_lifetimes = TokenLifetimesSerializer()


class GrantedScopeSerializer(serializers.Serializer):
    name = serializers.CharField()
    sentence = serializers.CharField(help_text="What the scope lets the app do, as the consent screen says it.")
    kind = serializers.CharField()
    data_class = serializers.CharField(allow_null=True)


class TokenPatientSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The FHIR logical id.")
    reference = serializers.CharField(help_text="Patient/<id>.")


class LayerVerdictSerializer(serializers.Serializer):
    layer = serializers.ChoiceField(choices=errors.LAYERS)
    check = serializers.CharField()
    verdict = serializers.ChoiceField(
        choices=["allow", "deny", "limited", "per_request"],
        help_text="deny: every call stops here; limited: some do; per_request: decided per endpoint or record.",
    )
    code = serializers.CharField(allow_null=True, help_text="The error code this layer refuses with.")
    detail = serializers.CharField()


class TokenInfoSerializer(serializers.Serializer):
    token_id = serializers.CharField(help_text="A fingerprint of the token (never the token itself), for support.")
    kind = serializers.ChoiceField(
        choices=["patient", "user", "system"],
        help_text="patient: speaks for one patient; user: for a signed-in user; system: a backend service.",
    )
    app = TokenAppSerializer()
    organization = TokenOrganizationSerializer()
    tier = TokenTierSerializer()
    scopes = GrantedScopeSerializer(many=True)
    patient = TokenPatientSerializer(allow_null=True)
    issued_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField()
    expires_in = serializers.IntegerField(help_text="Seconds left.")
    layers = LayerVerdictSerializer(many=True)


# --- Consents (/api/v1/consents) ------------------------------------------------------------------

CONSENT_STATES = ["active", "revoked", "expired", "superseded", "none"]


class PatientReferenceSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The FHIR logical id.")
    reference = serializers.CharField(help_text="Patient/<id>.")

    def to_representation(self, instance):
        return {"id": instance, "reference": f"Patient/{instance}"}


class ConsentTextRefSerializer(serializers.Serializer):
    purpose = serializers.SlugField()
    version = serializers.IntegerField()
    label = serializers.CharField(help_text="<purpose>:v<version>, as the ledger records it.")


class ConsentAppSerializer(serializers.Serializer):
    client_id = serializers.CharField()
    name = serializers.CharField()


class ConsentSerializer(serializers.Serializer):
    """One consent (a grant), as every consent endpoint returns it. ``state`` is ``none`` (and every
    other field null) when the app holds no consent for the patient."""

    id = serializers.IntegerField(allow_null=True, source="pk")
    state = serializers.ChoiceField(
        choices=CONSENT_STATES,
        help_text="active; revoked; expired (its end date passed); superseded (replaced by a newer consent); "
        "none (the patient never consented to this app).",
    )
    patient = PatientReferenceSerializer(source="patient_id", allow_null=True)
    app = ConsentAppSerializer(allow_null=True)
    purpose = serializers.SlugField(allow_null=True)
    scopes = serializers.ListField(child=serializers.CharField(), allow_null=True)
    data_classes = serializers.ListField(
        child=serializers.CharField(), allow_null=True, help_text="The data classes the scopes cover."
    )
    text = ConsentTextRefSerializer(allow_null=True, help_text="The consent text version the patient agreed to.")
    channel = serializers.ChoiceField(choices=["consent_screen", "signed_form", "api"], allow_null=True)
    recorded_by = serializers.CharField(
        allow_null=True, help_text="Slug of the provider organization that recorded it from a signed form."
    )
    source_document = serializers.CharField(allow_null=True, help_text="Reference to the signed form.")
    granted_at = serializers.DateTimeField(allow_null=True, source="created_at")
    expires_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True, help_text="When it was revoked, expired or superseded.")
    end_reason = serializers.CharField(allow_null=True)

    def to_representation(self, grant):
        if grant is None:
            return dict.fromkeys(self.fields) | {"state": "none"}
        return {
            "id": grant.pk,
            "state": grant_state(grant),
            "patient": {"id": grant.patient_id, "reference": f"Patient/{grant.patient_id}"},
            "app": {"client_id": grant.app.client_id, "name": grant.app.name},
            "purpose": grant.purpose,
            "scopes": list(grant.scopes),
            "data_classes": list(grant.data_classes),
            "text": {"purpose": grant.text.purpose, "version": grant.text.version, "label": grant.text.label},
            "channel": grant.channel,
            "recorded_by": grant.recorded_by_organization.slug if grant.recorded_by_organization_id else None,
            "source_document": grant.source_document or None,
            "granted_at": _datetime(grant.created_at),
            "expires_at": _datetime(grant.expires_at),
            "ended_at": _datetime(grant_end(grant)),
            "end_reason": grant.end_reason or None,
        }


def _datetime(value):
    return serializers.DateTimeField().to_representation(value) if value is not None else None


class OrganizationAuthorizationSerializer(serializers.Serializer):
    organization = serializers.CharField(help_text="The provider organization's slug.")
    name = serializers.CharField()
    state = serializers.ChoiceField(
        choices=["enabled", "blocked", "enabled_default", "not_enabled_default"],
        help_text="enabled/blocked: the provider decided; enabled_default: no decision, sandbox apps are "
        "enabled by default; not_enabled_default: no decision, production apps need the provider to enable them.",
    )
    decided_at = serializers.DateTimeField(allow_null=True)

    def to_representation(self, instance):
        return {
            "organization": instance.organization.slug,
            "name": instance.organization.name,
            "state": instance.state,
            "decided_at": _datetime(instance.decided_at),
        }


class DataAccessSerializer(serializers.Serializer):
    data_class = serializers.CharField()
    allowed = serializers.BooleanField()
    code = serializers.CharField(
        allow_null=True, help_text="The error code a request for this data would be refused with."
    )
    detail = serializers.CharField(allow_null=True)


class ConsentStatusSerializer(serializers.Serializer):
    patient = PatientReferenceSerializer()
    consent = ConsentSerializer(help_text="The calling app's most recent consent for this patient.")
    organization_authorization = OrganizationAuthorizationSerializer(
        many=True,
        help_text="Each provider holding the patient's records and its decision about the calling app. Shown "
        "once the patient has consented to the app (in any state), to a token speaking for that patient, "
        "and to a provider about itself; empty otherwise, since where a patient is cared for is itself private.",
    )
    access = DataAccessSerializer(
        many=True, help_text="What the data layer would answer the calling token, per data class."
    )

    def to_representation(self, instance):
        data = super().to_representation(instance)
        # DRF renders a missing nested object as null; "no consent" is a state of its own.
        data["consent"] = ConsentSerializer().to_representation(instance["consent"])
        return data


class ConsentStatusQuerySerializer(serializers.Serializer):
    patient = serializers.CharField(max_length=72, help_text="The patient's FHIR logical id (123 or Patient/123).")


class ConsentRecordSerializer(serializers.Serializer):
    patient = serializers.CharField(max_length=72, help_text="The patient's FHIR logical id (123 or Patient/123).")
    client_id = serializers.CharField(max_length=100, help_text="The app the patient consented to.")
    scopes = serializers.ListField(
        child=serializers.CharField(max_length=200),
        allow_empty=False,
        max_length=50,
        help_text="The scopes the patient consented to, as on the signed form.",
    )
    source_document = serializers.CharField(
        max_length=500, help_text="Reference to the signed form (a DocumentReference, a URL or your record number)."
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True, help_text="When the consent ends.")


class ConsentRevokeSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
