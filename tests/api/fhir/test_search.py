"""GET /fhir/r4/<Type>?...: every search parameter, paging by keyset cursor, the searchset Bundle,
and who sees what (the patient in context, consent across patients, environment)."""

from datetime import date, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from api.models import AccessEvent
from tests.api.fhir import helpers as h
from tests.api.fhir.helpers import T0, get, ids
from tests.factories import AppFactory

pytestmark = pytest.mark.django_db
BASE = "http://testserver/fhir/r4"


@pytest.fixture
def app(db):
    return AppFactory(name="Glucose Coach")


@pytest.fixture
def everyone(app):
    """A user-context token of an app every test patient consented to."""
    for pid in ("p1", "p2", "p3"):
        h.consent(app, pid)
    return h.user_token(app)


def search(client, resource_type, raw, **params):
    return get(client, f"/fhir/r4/{resource_type}", raw, params)


# --- Patient --------------------------------------------------------------------------------------------------


@pytest.fixture
def patients(db):
    return [
        h.patient("p1", family="Smith", given="Anna", birth=date(1980, 5, 17), mrn="A-1"),
        h.patient("p2", family="Smithers", given="Bob", birth=date(1990, 1, 2), gender="male", mrn="B-2"),
        h.patient("p3", family="Jones", given="Carla", birth=date(2001, 12, 31), mrn="C-3"),
    ]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["p1", "p2", "p3"]),
        ({"_id": "p2"}, ["p2"]),
        ({"_id": "p1,p3"}, ["p1", "p3"]),
        ({"identifier": f"{h.MRN}|B-2"}, ["p2"]),
        ({"identifier": "B-2"}, ["p2"]),
        ({"identifier": "other-system|B-2"}, []),
        ({"identifier": "Z-9"}, []),
        ({"name": "smith"}, ["p1", "p2"]),
        ({"name": "ANNA"}, ["p1"]),
        ({"name": "arl"}, ["p3"]),
        ({"name": "zed"}, []),
        ({"family": "smith"}, ["p1", "p2"]),
        ({"family": "Jones"}, ["p3"]),
        ({"family": "ones"}, []),
        ({"birthdate": "1980-05-17"}, ["p1"]),
        ({"birthdate": "eq1990"}, ["p2"]),
        ({"birthdate": "1990-02"}, []),
        ({"birthdate": "ge1990-01-02"}, ["p2", "p3"]),
        ({"birthdate": "gt1990-01-02"}, ["p3"]),
        ({"birthdate": "le1990-01-02"}, ["p1", "p2"]),
        ({"birthdate": "lt1990-01-02"}, ["p1"]),
        ({"birthdate": "ne1990-01-02"}, ["p1", "p3"]),
        ({"birthdate": ["ge1985", "lt2000"]}, ["p2"]),
        ({"gender": "male"}, ["p2"]),
        ({"name": "smith", "birthdate": "ge1985"}, ["p2"]),
    ],
)
def test_patient_parameters(client, patients, everyone, params, expected):
    assert ids(search(client, "Patient", everyone, **params)) == expected


@pytest.mark.parametrize(
    ("resource_type", "params", "field"),
    [
        ("Patient", {"birthdate": "notadate"}, "birthdate"),
        ("Patient", {"birthdate": "1990-13-01"}, "birthdate"),
        ("Patient", {"birthdate": "xx1990"}, "birthdate"),
        ("Patient", {"_count": "abc"}, "_count"),
        ("Patient", {"_count": "-1"}, "_count"),
        ("Patient", {"name": ""}, "name"),
        ("Patient", {"_cursor": "forged"}, "_cursor"),
        ("Observation", {"date": "ge2024-01-01T25:00"}, "date"),
        ("Observation", {"_sort": "code"}, "_sort"),
        ("Observation", {"patient": "Patient/"}, "patient"),
        ("Observation", {"code": "http://loinc.org|"}, "code"),
        ("Slot", {"start": "tomorrow"}, "start"),
    ],
)
def test_malformed_values_are_400_invalid(client, patients, everyone, resource_type, params, field):
    body = h.outcome(search(client, resource_type, everyone, **params), 400, "validation_error", "invalid")
    assert body["issue"][1]["expression"] == [field]


def test_unknown_parameters_are_ignored_and_reported(client, patients, everyone):
    response = search(client, "Patient", everyone, family="Jones", shoe_size="42", **{"name:exact": "x"})
    body = h.bundle(response)
    assert body["total"] == 1
    matches = [e for e in body["entry"] if e["search"]["mode"] == "match"]
    (reported,) = [e for e in body["entry"] if e["search"]["mode"] == "outcome"]
    assert [e["resource"]["id"] for e in matches] == ["p3"]
    issues = reported["resource"]["issue"]
    assert {i["severity"] for i in issues} == {"warning"}
    assert {i["code"] for i in issues} == {"not-supported"}
    assert any("shoe_size" in i["diagnostics"] for i in issues)
    assert any("name:exact" in i["diagnostics"] for i in issues)
    # the links carry what was applied, not what was ignored
    assert "shoe_size" not in body["link"][0]["url"]


def test_count_zero_and_summary_count_give_the_total_only(client, patients, everyone):
    for params in ({"_count": "0"}, {"_summary": "count"}):
        body = h.bundle(search(client, "Patient", everyone, **params))
        assert body["total"] == 3
        assert "entry" not in body
        assert not [link for link in body["link"] if link["relation"] == "next"]


def test_count_defaults_to_20_and_is_capped_at_100(client, app):
    for n in range(105):
        h.practitioner(f"pr{n:03d}")
    raw = h.user_token(app)
    default = h.bundle(search(client, "Practitioner", raw))
    assert (len(default["entry"]), default["total"]) == (20, 105)
    capped = h.bundle(search(client, "Practitioner", raw, _count="500"))
    assert len(capped["entry"]) == 100
    assert "_count=100" in capped["link"][0]["url"]


def test_links_are_absolute_on_the_request_host(client, patients, everyone, settings):
    settings.ALLOWED_HOSTS = ["testserver", "fhir.example"]
    body = h.bundle(
        get(client, "/fhir/r4/Patient", everyone, {"_count": "1", "name": "smith"}, HTTP_HOST="fhir.example")
    )
    links = {link["relation"]: link["url"] for link in body["link"]}
    assert links["self"].startswith("http://fhir.example/fhir/r4/Patient?")
    assert links["next"].startswith("http://fhir.example/fhir/r4/Patient?")
    assert parse_qs(urlsplit(links["next"]).query)["name"] == ["smith"]
    assert body["entry"][0]["fullUrl"] == "http://fhir.example/fhir/r4/Patient/p1"


def test_searches_return_application_fhir_json_with_no_store(client, patients, everyone):
    response = search(client, "Patient", everyone)
    assert response["Content-Type"] == h.FHIR
    assert response["Cache-Control"] == "no-store"


# --- Observation ------------------------------------------------------------------------------------------------


@pytest.fixture
def observations(db):
    return [
        h.observation("o1", "p1", category="laboratory", code="4548-4", effective=T0),
        h.observation("o2", "p1", category="vital-signs", code="8867-4", effective=T0 + timedelta(days=1)),
        h.observation("o3", "p1", category="laboratory", code="2345-7", effective=T0 + timedelta(days=2, hours=3)),
        h.observation("o4", "p2", category="laboratory", code="4548-4", effective=T0 + timedelta(days=3)),
    ]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"patient": "p1"}, ["o1", "o2", "o3"]),
        ({"patient": "Patient/p2"}, ["o4"]),
        ({"subject": "Patient/p2"}, ["o4"]),
        ({"patient": "Practitioner/p2"}, []),
        ({"patient": "p1,p2", "code": "4548-4"}, ["o1", "o4"]),
        ({"patient": "p1", "category": "laboratory"}, ["o1", "o3"]),
        ({"patient": "p1", "category": f"{h.CATEGORY}|vital-signs"}, ["o2"]),
        ({"patient": "p1", "category": "other-system|vital-signs"}, []),
        ({"patient": "p1", "category": "imaging"}, []),
        ({"patient": "p1", "code": "http://loinc.org|2345-7"}, ["o3"]),
        ({"patient": "p1", "code": "2345-7,8867-4"}, ["o2", "o3"]),
        ({"patient": "p1", "code": "http://snomed.info/sct|2345-7"}, []),
        ({"patient": "p1", "date": "2024-01-02"}, ["o2"]),
        ({"patient": "p1", "date": "ge2024-01-02"}, ["o2", "o3"]),
        ({"patient": "p1", "date": "gt2024-01-02"}, ["o3"]),
        ({"patient": "p1", "date": "le2024-01-02"}, ["o1", "o2"]),
        ({"patient": "p1", "date": "lt2024-01-02"}, ["o1"]),
        ({"patient": "p1", "date": ["ge2024-01-01T12:00:00Z", "lt2024-01-03T11:00:01+00:00"]}, ["o2", "o3"]),
        ({"patient": "p1", "date": "2024-01-03T11:00:00+00:00"}, ["o3"]),
        ({"patient": "p1", "date": "2024-01-03T12:00:00+01:00"}, ["o3"]),
        ({"patient": "p1", "date": "2023"}, []),
        ({"patient": "p1", "_sort": "-date"}, ["o3", "o2", "o1"]),
        ({"patient": "p1", "_sort": "date"}, ["o1", "o2", "o3"]),
    ],
)
def test_observation_parameters(client, observations, everyone, params, expected):
    assert ids(search(client, "Observation", everyone, **params)) == expected


def test_sorted_paging_by_date_with_ties(client, app, everyone):
    for n in range(7):
        h.observation(f"t{n}", "p1", effective=T0 + timedelta(days=n // 2))
    seen, url, pages = [], "/fhir/r4/Observation?patient=p1&_sort=-date&_count=3", 0
    while url:
        body = h.bundle(get(client, url, everyone))
        assert body["total"] == 7
        seen += [e["resource"]["id"] for e in body.get("entry", [])]
        url = next((link["url"] for link in body["link"] if link["relation"] == "next"), "")
        url = url.removeprefix("http://testserver")
        pages += 1
    assert pages == 3
    assert seen == ["t6", "t5", "t4", "t3", "t2", "t1", "t0"]


def test_the_cursor_is_stable_when_rows_are_inserted_between_pages(client, app, everyone):
    for n in range(6):
        h.observation(f"c{n}", "p1", effective=T0 + timedelta(days=n))
    first = h.bundle(search(client, "Observation", everyone, patient="p1", _sort="-date", _count="2"))
    assert [e["resource"]["id"] for e in first["entry"]] == ["c5", "c4"]
    # inserted before the cursor (newer than anything seen), and one after it
    h.observation("c9-newest", "p1", effective=T0 + timedelta(days=30))
    h.observation("c0a-middle", "p1", effective=T0 + timedelta(days=2, hours=1))
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = h.bundle(get(client, next_url.removeprefix("http://testserver"), everyone))
    assert [e["resource"]["id"] for e in second["entry"]] == ["c3", "c0a-middle"]
    assert second["total"] == 8


def test_a_cursor_is_bound_to_its_type_and_sort(client, app, everyone):
    for n in range(3):
        h.observation(f"x{n}", "p1", effective=T0 + timedelta(days=n))
    first = h.bundle(search(client, "Observation", everyone, patient="p1", _sort="-date", _count="1"))
    cursor = parse_qs(urlsplit(first["link"][1]["url"]).query)["_cursor"][0]
    h.outcome(
        search(client, "Observation", everyone, patient="p1", _sort="date", _cursor=cursor), 400, "validation_error"
    )
    h.outcome(search(client, "Patient", everyone, _cursor=cursor), 400, "validation_error")


# --- Appointment, Slot, Coverage, Schedule ----------------------------------------------------------------------


def test_appointment_parameters(client, everyone):
    h.appointment("a1", "p1", start=T0, status="booked")
    h.appointment("a2", "p1", start=T0 + timedelta(days=10), status="cancelled")
    h.appointment("a3", "p2", start=T0 + timedelta(days=10), status="booked")
    assert ids(search(client, "Appointment", everyone, patient="p1")) == ["a1", "a2"]
    assert ids(search(client, "Appointment", everyone, patient="Patient/p2")) == ["a3"]
    assert ids(search(client, "Appointment", everyone, patient="p3")) == []
    assert ids(search(client, "Appointment", everyone, status="booked")) == ["a1", "a3"]
    assert ids(search(client, "Appointment", everyone, status="booked,cancelled", patient="p1")) == ["a1", "a2"]
    assert ids(search(client, "Appointment", everyone, status="noshow")) == []
    assert ids(search(client, "Appointment", everyone, date="ge2024-01-05")) == ["a2", "a3"]
    assert ids(search(client, "Appointment", everyone, date="2024-01-01", patient="p1")) == ["a1"]
    assert ids(search(client, "Appointment", everyone, date="lt2024-01-01")) == []


def test_slot_parameters(client, app):
    raw = h.user_token(app)
    h.slot("sl1", "s1", start=T0, status="free")
    h.slot("sl2", "s1", start=T0 + timedelta(hours=1), status="busy")
    h.slot("sl3", "s2", start=T0 + timedelta(days=1), status="free")
    assert ids(search(client, "Slot", raw, schedule="Schedule/s1")) == ["sl1", "sl2"]
    assert ids(search(client, "Slot", raw, schedule="s2")) == ["sl3"]
    assert ids(search(client, "Slot", raw, schedule="s9")) == []
    assert ids(search(client, "Slot", raw, status="free")) == ["sl1", "sl3"]
    assert ids(search(client, "Slot", raw, status="busy-tentative")) == []
    assert ids(search(client, "Slot", raw, start="ge2024-01-01T08:30:00Z")) == ["sl2", "sl3"]
    assert ids(search(client, "Slot", raw, start="lt2024-01-01T08:30:00Z")) == ["sl1"]
    assert ids(search(client, "Slot", raw, start="2024-01-02", status="free")) == ["sl3"]
    assert ids(search(client, "Slot", raw, _sort="-start")) == ["sl3", "sl2", "sl1"]


def test_coverage_and_schedule_parameters(client, everyone):
    h.coverage("cv1", "p1")
    h.coverage("cv2", "p2")
    h.schedule("s1", "pr1")
    h.schedule("s2", "pr2")
    assert ids(search(client, "Coverage", everyone, patient="p1")) == ["cv1"]
    assert ids(search(client, "Coverage", everyone, beneficiary="Patient/p2")) == ["cv2"]
    assert ids(search(client, "Coverage", everyone, patient="p3")) == []
    assert ids(search(client, "Schedule", everyone, actor="Practitioner/pr2")) == ["s2"]
    assert ids(search(client, "Schedule", everyone, actor="pr1")) == ["s1"]
    assert ids(search(client, "Schedule", everyone, actor="Patient/pr1")) == []


def test_practitioner_and_organization_parameters(client, app):
    raw = h.user_token(app)
    h.practitioner("pr1", family="House", given="Greg")
    h.practitioner("pr2", family="Wilson", given="James")
    h.organization("o1", name="Riverside Clinic")
    h.organization("o2", name="Acme Payer")
    assert ids(search(client, "Practitioner", raw, name="greg")) == ["pr1"]
    assert ids(search(client, "Practitioner", raw, family="wil")) == ["pr2"]
    assert ids(search(client, "Practitioner", raw, _id="pr2")) == ["pr2"]
    assert ids(search(client, "Organization", raw, name="clinic")) == ["o1"]
    assert ids(search(client, "Organization", raw, name="hospital")) == []


def test_sort_on_a_type_without_sorts_is_reported(client, app):
    h.practitioner("pr1")
    body = h.bundle(search(client, "Practitioner", h.user_token(app), _sort="name"))
    assert body["entry"][-1]["search"]["mode"] == "outcome"


# --- who sees what -------------------------------------------------------------------------------------------------


def test_a_patient_token_searches_its_own_patient_only(client, app, patients, observations):
    h.consent(app, "p1")
    h.consent(app, "p2")
    raw = h.patient_token(app, "p1")
    assert ids(search(client, "Patient", raw)) == ["p1"]
    assert ids(search(client, "Observation", raw)) == ["o1", "o2", "o3"]
    assert ids(search(client, "Observation", raw, patient="Patient/p1", code="4548-4")) == ["o1"]
    assert ids(search(client, "Observation", raw, code="4548-4")) == ["o1"]  # o4 is p2's
    h.outcome(search(client, "Observation", raw, patient="p2"), 403, "forbidden")
    h.outcome(search(client, "Observation", raw, patient="p1,p2"), 403, "forbidden")
    h.outcome(search(client, "Patient", raw, _id="p2"), 403, "forbidden")
    refused = AccessEvent.objects.filter(outcome="refused")
    assert {(e.refusal_code, e.patient_id) for e in refused} == {("forbidden", "p2")}


def test_a_patient_search_needs_that_patients_consent(client, app, observations):
    raw = h.patient_token(app, "p1")
    h.outcome(search(client, "Observation", raw), 403, "consent_required")
    event = AccessEvent.objects.get()
    assert (event.action, event.outcome, event.patient_id) == ("search", "refused", "p1")


def test_a_consent_for_one_category_narrows_an_observation_search(client, app, observations):
    h.consent(app, "p1", scopes=["patient/Observation.rs?category=laboratory"])
    raw = h.patient_token(app, "p1")
    assert ids(search(client, "Observation", raw)) == ["o1", "o3"]
    assert ids(search(client, "Observation", raw, category="laboratory")) == ["o1", "o3"]
    h.outcome(search(client, "Observation", raw, category="vital-signs"), 403, "consent_required")


def test_a_scope_for_one_category_narrows_an_observation_search(client, app, observations):
    h.consent(app, "p1")
    raw = h.patient_token(app, "p1", scope="launch/patient patient/Observation.rs?category=vital-signs")
    assert ids(search(client, "Observation", raw)) == ["o2"]
    h.outcome(search(client, "Observation", raw, category="laboratory"), 403, "insufficient_scope")


def test_cross_patient_searches_only_return_consented_patients(client, app, patients, observations):
    grant = h.consent(app, "p1")
    h.consent(app, "p3", scopes=["patient/Coverage.rs"])  # p3: no demographics, no observations
    raw = h.user_token(app)
    assert ids(search(client, "Patient", raw)) == ["p1"]
    assert h.bundle(search(client, "Patient", raw))["total"] == 1
    assert ids(search(client, "Observation", raw)) == ["o1", "o2", "o3"]
    events = list(AccessEvent.objects.filter(action="search", outcome="allowed"))
    assert {(e.patient_id, e.consent_grant_id) for e in events} == {("p1", grant.pk)}
    # naming a patient without consent is refused outright, naming the consent state
    h.outcome(search(client, "Observation", raw, patient="p2"), 403, "consent_required")
    h.outcome(search(client, "Patient", raw, _id="nobody"), 403, "consent_required")


def test_cross_patient_observation_search_respects_consented_categories(client, app, observations):
    h.consent(app, "p1", scopes=["patient/Observation.rs?category=vital-signs"])
    h.consent(app, "p2", scopes=["patient/Observation.rs"])
    raw = h.system_token(app)
    assert ids(search(client, "Observation", raw)) == ["o2", "o4"]
    assert h.bundle(search(client, "Observation", raw, _summary="count"))["total"] == 2


def test_a_revoked_consent_hides_the_patient_from_cross_patient_searches(client, app, patients):
    from consent.services import consent_revoke

    grant = h.consent(app, "p1")
    h.consent(app, "p2")
    raw = h.system_token(app)
    assert ids(search(client, "Patient", raw)) == ["p1", "p2"]
    consent_revoke(grant=grant, actor="patient", channel="consent_screen")
    assert ids(search(client, "Patient", raw)) == ["p2"]


def test_a_provider_blocking_the_app_hides_its_patients(client, app, patients):
    from consent.models import AppAuthorization
    from tests.consent.helpers import holds, provider

    clinic = provider()
    holds(clinic, "p2")
    AppAuthorization.objects.create(organization=clinic, app=app, decision="blocked")
    h.consent(app, "p1")
    h.consent(app, "p2")
    assert ids(search(client, "Patient", h.system_token(app))) == ["p1"]


def test_a_provider_backend_sees_the_patients_it_holds(client, patients):
    from tests.consent.helpers import holds, provider

    clinic = provider()
    holds(clinic, "p3")
    backend = AppFactory(organization=clinic)
    h.consent(backend, "p1")
    assert ids(search(client, "Patient", h.system_token(backend))) == ["p1", "p3"]


def test_environments_never_mix_in_searches(client, app):
    h.patient("sb1")
    h.patient("pd1", environment="production")
    h.practitioner("prs")
    h.practitioner("prp", environment="production")
    h.consent(app, "sb1")
    h.consent(app, "pd1")
    raw = h.system_token(app)
    assert ids(search(client, "Patient", raw)) == ["sb1"]
    assert ids(search(client, "Practitioner", raw)) == ["prs"]
    production = AppFactory(environment="production")
    assert ids(search(client, "Practitioner", h.system_token(production))) == ["prp"]


def test_searches_of_patient_data_are_audited_once_per_patient(client, app, observations):
    g1, g2 = h.consent(app, "p1"), h.consent(app, "p2")
    raw = h.system_token(app)
    search(client, "Observation", raw)
    events = AccessEvent.objects.filter(action="search")
    assert sorted((e.patient_id, e.consent_grant_id, e.resource_type) for e in events) == [
        ("p1", g1.pk, "Observation"),
        ("p2", g2.pk, "Observation"),
    ]


def test_a_search_without_the_scope_is_403_and_audited(client, app):
    raw = h.patient_token(app, "p1", scope="launch/patient patient/Patient.rs")
    h.outcome(search(client, "Observation", raw), 403, "insufficient_scope")
    event = AccessEvent.objects.get()
    assert (event.outcome, event.refusal_code, event.patient_id) == ("refused", "insufficient_scope", "p1")
