"""Eligibility checks: is this patient's Coverage good for this kind of service, and what will they pay?

The payer is simulated: its answer is a pure function of the coverage (its status, its id, its payer)
and the service type, so the same question always gets the same answer, and it takes
``ELIGIBILITY_PAYER_LATENCY_MS`` to come, like a real payer round trip. A check is costly (the
``eligibility`` quota is the tier's smallest), which is why its POST is idempotent: a retried check
returns the first answer instead of asking the payer again.

Every check runs in the caller's transaction (the view's idempotent block) and leaves, with it, the
``EligibilityCheck`` row and an access event (a read of the patient's coverage).
"""

import hashlib
import time
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from api.audit import record_access
from api.models import Coverage, EligibilityCheck
from api.models import Organization as FhirOrganization
from api.problems import Problem
from api.workflows.common import new_id

DATA_CLASS = "coverage"
ELIGIBLE = EligibilityCheck.Outcome.ELIGIBLE.value
NOT_ELIGIBLE = EligibilityCheck.Outcome.NOT_ELIGIBLE.value
UNKNOWN = EligibilityCheck.Outcome.UNKNOWN.value
OUTCOMES = (ELIGIBLE, NOT_ELIGIBLE, UNKNOWN)
# The service types a check may ask about, as the docs and the OpenAPI document list them.
SERVICE_TYPES = {
    "office_visit": "Office visit",
    "lab": "Laboratory tests",
    "imaging": "Imaging",
    "pharmacy": "Pharmacy",
}
SERVICE_TYPE_KEYS = tuple(SERVICE_TYPES)
# The simulated payer's catalogue: a coverage gets one plan, a plan's cost sharing depends on the service.
PLANS = ("Bronze PPO", "Silver PPO", "Gold HMO", "Platinum PPO")
COPAYS = {
    "office_visit": (15, 20, 25, 30, 40),
    "lab": (0, 10, 15, 20),
    "imaging": (50, 75, 100, 150),
    "pharmacy": (5, 10, 15),
}
DEDUCTIBLES = (500, 1000, 1500, 2500, 5000)
COINSURANCE = (0, 10, 20, 30)


@dataclass(frozen=True)
class CheckRequest:
    patient_id: str
    coverage_id: str | None  # None: the patient's active coverage
    service_type: str


def _coverage(*, context, wanted: CheckRequest) -> Coverage:
    """The coverage to check: the one named, if it is the patient's and visible to the app, or else the
    patient's active coverage (the most recently updated, when there are several). 404 otherwise."""
    coverages = Coverage.objects.filter(environment=context.app.environment, patient_id=wanted.patient_id)
    if wanted.coverage_id:
        coverage = coverages.filter(id=wanted.coverage_id).first()
        if coverage is None:
            raise Problem(
                "not_found", f"No Coverage/{wanted.coverage_id} of Patient/{wanted.patient_id} is visible to this app."
            )
        return coverage
    coverage = coverages.filter(status="active").order_by("-last_updated", "-id").first()
    if coverage is None:
        raise Problem(
            "not_found",
            f"Patient/{wanted.patient_id} has no active Coverage visible to this app; name one in 'coverage'.",
        )
    return coverage


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x1f".join(parts).encode()).digest()


def _payer_answer(coverage: Coverage, *, service_type: str, payer_name: str) -> tuple[str, dict]:
    """What the simulated payer says: deterministic from the coverage and the service type."""
    if not coverage.payor:
        return UNKNOWN, {"reason": f"Coverage/{coverage.id} names no payer to ask."}
    if coverage.status != "active":
        return NOT_ELIGIBLE, {
            "payer_name": payer_name,
            "coverage_status": coverage.status,
            "reason": f"Coverage/{coverage.id} is {coverage.status}, not active.",
        }
    plan = _digest("plan", coverage.id)  # the plan is the coverage's, whatever the service
    cost = _digest("cost", coverage.id, service_type)
    deductible = DEDUCTIBLES[plan[1] % len(DEDUCTIBLES)]
    met = deductible * (plan[2] % 101) // 100
    details = {
        "payer_name": payer_name,
        "coverage_status": coverage.status,
        "plan": PLANS[plan[0] % len(PLANS)],
        "member_id": f"M{int.from_bytes(plan[3:8]) % 10**9:09d}",
        "in_network": cost[0] % 10 != 0,  # one answer in ten: the service is out of network
        "copay": {"amount": COPAYS[service_type][cost[1] % len(COPAYS[service_type])], "currency": "USD"},
        "coinsurance_percent": COINSURANCE[cost[2] % len(COINSURANCE)],
        "deductible": {"amount": deductible, "remaining": deductible - met, "currency": "USD"},
    }
    if coverage.body.get("period"):
        details["period"] = coverage.body["period"]
    return ELIGIBLE, details


def _ask_payer(coverage: Coverage, *, service_type: str, payer_name: str) -> tuple[str, dict, int]:
    """The payer round trip, timed. It runs before this transaction writes anything, so the wait holds
    no row lock; a retry of the same request meanwhile is kept out by the idempotency claim."""
    started = time.monotonic()
    latency = settings.ELIGIBILITY_PAYER_LATENCY_MS
    if latency > 0:
        time.sleep(latency / 1000)
    outcome, details = _payer_answer(coverage, service_type=service_type, payer_name=payer_name)
    return outcome, details, round((time.monotonic() - started) * 1000)


def eligibility_check(request, *, context, wanted: CheckRequest, grant_id: int | None) -> EligibilityCheck:
    """Ask the payer whether ``wanted.patient_id``'s coverage covers ``wanted.service_type`` and record
    the answer. The caller has checked the patient's consent to coverage (``grant_id``)."""
    coverage = _coverage(context=context, wanted=wanted)
    payer = f"Organization/{coverage.payor}" if coverage.payor else ""
    payer_name = (
        FhirOrganization.objects.filter(environment=coverage.environment, id=coverage.payor)
        .values_list("name", flat=True)
        .first()
        or payer
    )
    outcome, details, latency_ms = _ask_payer(coverage, service_type=wanted.service_type, payer_name=payer_name)
    check = EligibilityCheck.objects.create(
        id=new_id("elig"),
        environment=context.app.environment,
        app=context.app,
        organization=context.organization,
        patient_id=wanted.patient_id,
        coverage_id=coverage.id,
        payer=payer,
        service_type=wanted.service_type,
        outcome=outcome,
        details=details,
        consent_grant_id=grant_id,
        payer_latency_ms=latency_ms,
        created_at=timezone.now(),
    )
    record_access(
        request,
        resource_type="Coverage",
        resource_id=coverage.id,
        patient_id=wanted.patient_id,
        action="read",
        outcome="allowed",
        consent_grant_id=grant_id,
    )
    return check


def visible_checks(*, context):
    """The checks this app ran, in its environment (and only its patient's, for a patient token)."""
    checks = EligibilityCheck.objects.filter(environment=context.app.environment, app_id=context.app.pk)
    if context.patient_id:
        checks = checks.filter(patient_id=context.patient_id)
    return checks
