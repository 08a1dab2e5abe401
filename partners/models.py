"""Partners: accounts, organizations and their members, apps (OAuth2 clients), tiers, upgrades."""

import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models.functions import Lower
from django.urls import reverse
from oauth2_provider.models import AbstractApplication

from partners.tiers import ENDPOINT_GROUPS
from partners.validators import validate_rate_quota_overrides


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email, password, **extra_fields):
        if not email:
            raise ValueError("An email address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra_fields)


class User(AbstractUser):
    """A person who logs in: a partner developer, a platform admin or a patient.

    The email address is the login. Email is verified before an account can create an
    organization or accept an invitation.
    """

    username = None
    email = models.EmailField("email address", max_length=254, unique=True)
    email_verified_at = models.DateTimeField(null=True, blank=True)
    # The FHIR Patient this account speaks for (its logical id, e.g. "123"): the patient in the
    # context of a patient-facing token. Consent and the clinical store refer to patients the same
    # way, never by a foreign key into the API's tables.
    fhir_patient_id = models.CharField(max_length=64, blank=True, db_index=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = []

    objects = UserManager()

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_ci_unique")]

    def __str__(self):
        return self.email

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    @property
    def display_name(self) -> str:
        return self.get_full_name() or self.email


class Tier(models.Model):
    """A rung on the path from sandbox to production, with what it allows and what it takes.

    Tiers are data (seeded by a migration, edited in admin), so the docs and the rate limiter read
    the same numbers.
    """

    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=60)
    rank = models.PositiveSmallIntegerField(
        unique=True, help_text="Order on the upgrade path; 0 is where new organizations start."
    )
    summary = models.TextField(blank=True)

    # Capabilities.
    allowed_scopes = models.JSONField(
        default=list,
        blank=True,
        help_text='Scope patterns the tier may grant, e.g. "patient/*.rs", "system/Patient.rs", "appointments.write".',
    )
    write_access = models.BooleanField(default=False, help_text="May call endpoints that create or change data.")
    production_credentials = models.BooleanField(default=False, help_text="May register production apps.")
    max_apps = models.PositiveSmallIntegerField(default=3)
    max_webhook_subscriptions = models.PositiveSmallIntegerField(default=2)
    rate_quotas = models.JSONField(
        default=dict,
        blank=True,
        help_text="Per endpoint group: {burst, per_minute, per_day} request counts.",
    )
    patient_token_lifetime = models.PositiveIntegerField(
        default=3600, help_text="Seconds an access token issued for a patient-facing app lives."
    )
    system_token_lifetime = models.PositiveIntegerField(
        default=300,
        validators=[MaxValueValidator(300)],
        help_text="Seconds a backend-services (system/*) token lives; SMART caps this at 300.",
    )
    refresh_token_lifetime = models.PositiveIntegerField(default=60 * 60 * 24 * 90)

    # Requirements to reach this tier.
    requires_security_questionnaire = models.BooleanField(default=False)
    requires_baa = models.BooleanField(default=False, verbose_name="requires a signed business associate agreement")
    requires_certification = models.BooleanField(default=False, verbose_name="requires a passing certification run")
    requires_admin_approval = models.BooleanField(default=True)

    class Meta:
        ordering = ["rank"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(system_token_lifetime__lte=300), name="tier_system_token_at_most_300s"
            ),
        ]

    def __str__(self):
        return self.name

    def quota_for(self, group: str) -> dict:
        return dict(self.rate_quotas.get(group, {}))

    @property
    def quota_rows(self) -> list[tuple[str, str, dict]]:
        return [(group, label, self.quota_for(group)) for group, label in ENDPOINT_GROUPS.items()]

    def next_tier(self):
        return Tier.objects.filter(rank__gt=self.rank).order_by("rank").first()


class Organization(models.Model):
    class PartnerType(models.TextChoices):
        PROVIDER = "provider", "Provider"
        PAYER = "payer", "Payer"
        DEVELOPER = "developer", "Digital-health developer"
        RESEARCH = "research", "Research"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    partner_type = models.CharField(max_length=20, choices=PartnerType.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="organizations")
    website = models.URLField(blank=True, max_length=300)

    suspended_at = models.DateTimeField(null=True, blank=True)
    suspended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    suspension_reason = models.TextField(blank=True)
    rate_quota_overrides = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_rate_quota_overrides],
        help_text='Per endpoint group, windows that replace the tier\'s: {"fhir_read": {"per_day": 50000}}. '
        "Applies from the next request.",
    )

    # Evidence kept on the organization so the tier checklist can tell what is already done.
    security_questionnaire = models.JSONField(null=True, blank=True)
    security_questionnaire_submitted_at = models.DateTimeField(null=True, blank=True)
    baa_signed_at = models.DateTimeField(null=True, blank=True)
    baa_signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    baa_version = models.CharField(max_length=20, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["status", "tier"])]

    def __str__(self):
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        DEVELOPER = "developer", "Developer"
        VIEWER = "viewer", "Viewer"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organization"], name="membership_unique")]
        ordering = ["organization__name", "user__email"]

    def __str__(self):
        return f"{self.user} ({self.role}) in {self.organization}"

    # What each role may do; the services check these, the templates hide what a role cannot do.
    @property
    def can_manage_apps(self) -> bool:
        return self.role in {self.Role.OWNER, self.Role.ADMIN, self.Role.DEVELOPER}

    @property
    def can_manage_members(self) -> bool:
        return self.role in {self.Role.OWNER, self.Role.ADMIN}

    @property
    def can_request_upgrade(self) -> bool:
        return self.role in {self.Role.OWNER, self.Role.ADMIN}


class Invitation(models.Model):
    """An emailed invitation to join an organization. Only the token's hash is stored."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=20, choices=Membership.Role.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                "organization",
                Lower("email"),
                condition=models.Q(accepted_at__isnull=True, revoked_at__isnull=True),
                name="invitation_one_open_per_email",
            )
        ]

    def __str__(self):
        return f"{self.email} to {self.organization}"

    @property
    def is_open(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None


class App(AbstractApplication):
    """A partner's OAuth2 client: django-oauth-toolkit's Application, swapped in.

    DOT keeps one ``authorization_grant_type``; a SMART app often needs two (authorization code for
    patients, client credentials for its backend), so ``grant_types`` holds the full list and
    ``allows_grant_type`` reads it. ``authorization_grant_type`` keeps the primary one for DOT's
    own checks (redirect URIs required for authorization code).
    """

    class Environment(models.TextChoices):
        SANDBOX = "sandbox", "Sandbox"
        PRODUCTION = "production", "Production"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="apps")
    environment = models.CharField(max_length=20, choices=Environment.choices, default=Environment.SANDBOX)
    description = models.TextField(max_length=2000, blank=True)
    homepage_url = models.URLField(max_length=500, blank=True)
    privacy_policy_url = models.URLField(max_length=500, blank=True)
    grant_types = models.JSONField(default=list)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)
    # SMART Backend Services: the public keys that verify the app's private_key_jwt assertions,
    # registered by value (a JWK Set) or by URL (fetched with timeouts, cached as it allows).
    jwks = models.JSONField(null=True, blank=True, help_text="A JWK Set with the app's public keys.")
    jwks_url = models.URLField(max_length=500, blank=True, help_text="Where the app publishes its JWK Set.")
    # The onboarding milestones the portal's analytics read (signup -> organization -> app -> first token
    # -> first successful call). Kept on the app because tokens are purged when they expire and usage
    # rows after 13 months; set once, never moved.
    first_token_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The per-app changelog feed's address is signed over the app id and this number: rotating the
    # address (partners.services.app_changelog_feed_rotate) counts it up, and every older address stops.
    changelog_feed_generation = models.PositiveIntegerField(default=1, editable=False)
    first_success_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="The UTC hour of the app's first 2xx API response."
    )

    class Meta(AbstractApplication.Meta):
        swappable = "OAUTH2_PROVIDER_APPLICATION_MODEL"
        ordering = ["name"]

    def get_absolute_url(self):
        return reverse("portal:app-detail", args=[self.pk])

    def allows_grant_type(self, *grant_types):
        return any(grant in self.grant_types for grant in grant_types)

    def get_allowed_schemes(self):
        # The global setting allows https only. http reaches here only through registrations that
        # partners.validators accepted: any host for a sandbox app, loopback for a production one.
        if any(uri.startswith("http://") for uri in self.redirect_uri_list):
            return ["https", "http"]
        return ["https"]

    @property
    def redirect_uri_list(self) -> list[str]:
        return self.redirect_uris.split()

    @property
    def is_production(self) -> bool:
        return self.environment == self.Environment.PRODUCTION

    @property
    def uses_key_authentication(self) -> bool:
        return bool(self.jwks or self.jwks_url)

    def is_usable(self, request) -> bool:
        # DOT asks this before issuing a token and on every bearer-token check, so a suspended
        # organization's apps stop at once, both ways.
        return self.organization.is_active


class UsedClientAssertion(models.Model):
    """A client assertion's ``jti``, remembered until the assertion expires so it cannot be replayed.

    The unique constraint makes "first use wins" atomic across every web worker and database.
    """

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="+")
    jti = models.CharField(max_length=255)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "jti"], name="client_assertion_jti_once")]

    def __str__(self):
        return f"{self.app_id}:{self.jti}"


class TierUpgradeRequest(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        WITHDRAWN = "withdrawn", "Withdrawn"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="upgrade_requests")
    from_tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="+")
    to_tier = models.ForeignKey(Tier, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    justification = models.TextField(max_length=4000, blank=True)
    questionnaire_answers = models.JSONField(null=True, blank=True)
    evidence_links = models.TextField(max_length=4000, blank=True)
    baa_accepted = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization"],
                condition=models.Q(status="pending"),
                name="upgrade_request_one_pending_per_org",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="rejected") | ~models.Q(decision_reason=""),
                name="upgrade_request_rejection_has_reason",
            ),
        ]

    def __str__(self):
        return f"{self.organization}: {self.from_tier} → {self.to_tier} ({self.status})"

    @property
    def is_pending(self) -> bool:
        return self.status == self.Status.PENDING

    @property
    def evidence_link_list(self) -> list[str]:
        return self.evidence_links.split()


class InboxMessage(models.Model):
    """A notice in a member's portal inbox, sent alongside the email of the same news."""

    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="inbox")
    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    subject = models.CharField(max_length=200)
    body = models.TextField()
    link = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["recipient", "read_at"])]

    def __str__(self):
        return self.subject


class OutboxEvent(models.Model):
    """The transactional outbox: an event is written in the same transaction as the change that
    caused it, so it exists exactly when the change does; webhook delivery and the event feed read it.
    This is how a higher layer (consent, the API) tells partners' apps something happened."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=60, db_index=True)
    payload = models.JSONField(default=dict)
    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    app = models.ForeignKey(App, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    patient_id = models.CharField(max_length=64, blank=True, db_index=True)
    occurred_at = models.DateTimeField(auto_now_add=True, db_index=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    version = models.PositiveSmallIntegerField(default=1, help_text="The version of the payload's schema.")

    class Meta:
        ordering = ["occurred_at"]

    def __str__(self):
        return f"{self.type} {self.id}"


from partners.certification_models import (  # noqa: E402, F401 - they refer to the models above
    CertificationCheckResult,
    CertificationRun,
    SandboxTrace,
)
from partners.event_models import (  # noqa: E402, F401 - they refer to the models above
    DeliveryAttempt,
    EventCounter,
    EventRecipient,
    WebhookDelivery,
    WebhookSubscription,
)
