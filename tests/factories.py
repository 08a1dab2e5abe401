"""factory-boy factories shared by the whole suite."""

from datetime import timedelta

import factory
from django.utils import timezone

from api import usage
from partners.models import App, Membership, Organization, Tier, TierUpgradeRequest, User

DEFAULT_PASSWORD = "correct-horse-battery-staple"


def tier(slug: str) -> Tier:
    return Tier.objects.get(slug=slug)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    first_name = "Test"
    last_name = factory.Sequence(lambda n: f"User{n}")
    email_verified_at = factory.LazyFunction(timezone.now)
    password = factory.PostGenerationMethodCall("set_password", DEFAULT_PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Organization {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")
    partner_type = Organization.PartnerType.DEVELOPER
    tier = factory.LazyFunction(lambda: tier("sandbox"))


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = Membership.Role.OWNER


class AppFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = App

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"App {n}")
    environment = App.Environment.SANDBOX
    client_type = App.CLIENT_CONFIDENTIAL
    authorization_grant_type = App.GRANT_AUTHORIZATION_CODE
    grant_types = factory.LazyFunction(lambda: [App.GRANT_AUTHORIZATION_CODE])
    redirect_uris = "https://app.example.com/callback"
    client_secret = "factory-secret"
    algorithm = App.RS256_ALGORITHM


class TierUpgradeRequestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TierUpgradeRequest

    organization = factory.SubFactory(OrganizationFactory)
    from_tier = factory.LazyAttribute(lambda o: o.organization.tier)
    to_tier = factory.LazyAttribute(lambda o: o.organization.tier.next_tier())
    justification = "We are ready."


def member(role: str = Membership.Role.OWNER, organization: Organization | None = None, **user_kwargs) -> Membership:
    organization = organization or OrganizationFactory()
    return MembershipFactory(organization=organization, role=role, user=UserFactory(**user_kwargs))


# --- Webhooks ----------------------------------------------------------------------------------


class WebhookSubscriptionFactory(factory.django.DjangoModelFactory):
    """Made directly, without the URL checks of ``webhook_subscription_create`` (no DNS lookup)."""

    class Meta:
        model = "partners.WebhookSubscription"

    app = factory.SubFactory(AppFactory)
    url = factory.Sequence(lambda n: f"https://hooks{n}.example.com/events")
    event_types = factory.LazyFunction(lambda: ["consent.granted", "consent.revoked"])


class OutboxEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "partners.OutboxEvent"

    type = "consent.granted"
    payload = factory.LazyFunction(lambda: {"consent_id": 1, "patient": "Patient/p1", "status": "active"})
    dispatched_at = factory.LazyFunction(timezone.now)


class WebhookDeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "partners.WebhookDelivery"

    subscription = factory.SubFactory(WebhookSubscriptionFactory)
    event = factory.SubFactory(
        OutboxEventFactory,
        app=factory.SelfAttribute("..subscription.app"),
        organization=factory.SelfAttribute("..subscription.app.organization"),
    )
    sequence = factory.Sequence(lambda n: n + 1)
    reason = "event"
    status = "pending"
    next_attempt_at = factory.LazyFunction(timezone.now)


class DeliveryAttemptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "partners.DeliveryAttempt"

    delivery = factory.SubFactory(WebhookDeliveryFactory)
    number = factory.Sequence(lambda n: n + 1)
    started_at = factory.LazyFunction(timezone.now)
    duration_ms = 120
    status_code = 200
    response_excerpt = '{"ok": true}'
    succeeded = True


class DeprecationFactory(factory.django.DjangoModelFactory):
    """A published deprecation of ``path_prefix``, announced yesterday, with its sunset 200 days away."""

    class Meta:
        model = "api.Deprecation"

    path_prefix = "v1/visits"
    title = factory.LazyAttribute(lambda d: f"{d.path_prefix} goes away")
    summary = "Going."
    replacement = "/api/v2/visits"
    migration_guide = "/docs/migrating-to-v2/"
    announced_at = factory.LazyFunction(lambda: timezone.now() - timedelta(days=1))
    sunset_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=200))
    published = True


def record_calls(app, endpoint: str, times: int, at, *, group: str = "fhir_read", status: int = 200) -> None:
    """``times`` responses of ``app`` from ``endpoint`` at ``at``, counted as the API counts them
    (``api.usage.record``); ``usage.flush()`` sends them to the shared counters."""
    for _ in range(times):
        usage.record(
            app_id=app.pk,
            organization_id=app.organization_id,
            group=group,
            status=status,
            error_code=None,
            policy=None,
            endpoint=endpoint,
            at=at,
        )
