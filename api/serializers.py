"""Serializers of the platform endpoints, and of the problem shape for the OpenAPI document."""

from rest_framework import serializers

from api import errors
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
    code = serializers.ChoiceField(choices=sorted(errors.ERRORS))
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
