"""The sandbox's synthetic FHIR data: deterministic, idempotent, incremental, valid FHIR R4, and
clinically coherent (typed columns, units, reference ranges and interpretations agree)."""

import importlib
from collections import Counter
from datetime import date, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from api import synthetic
from api.models import RESOURCE_MODELS, Appointment, Observation, Patient, Schedule, Slot
from api.seed import index_columns, seed_fhir_sandbox, synthetic_counts, typed_column_names
from consent.models import CareRelationship
from consent.seed import SANDBOX_PROVIDER_SLUG

ANCHOR = date(2026, 3, 10)  # a Tuesday
UCUM = "http://unitsofmeasure.org"


def stored(resource_type=None) -> dict:
    """{(resource type, id): body} of the synthetic sandbox rows."""
    types = [resource_type] if resource_type else list(RESOURCE_MODELS)
    return {
        (rt, row.id): row.body
        for rt in types
        for row in RESOURCE_MODELS[rt].objects.filter(synthetic=True, environment="sandbox")
    }


def generated(patients: int, anchor: date = ANCHOR) -> dict:
    """What a fresh seed of ``patients`` should store, straight from the generator."""
    bodies = {("Organization", b["id"]): b for b in synthetic.organizations()}
    practitioners = synthetic.practitioner_count(patients)
    bodies.update(
        {("Practitioner", synthetic.practitioner_id(j)): synthetic.practitioner(j) for j in range(practitioners)}
    )
    bundles = [synthetic.demo_bundle(anchor), *(synthetic.patient_bundle(i, anchor) for i in range(patients))]
    bundles += [synthetic.schedule_bundle(j, anchor, patients) for j in range(practitioners)]
    for bundle in bundles:
        for resource_type, items in bundle.items():
            bodies.update({(resource_type, b["id"]): b for b in items})
    return bodies


def fhir_model(resource_type: str):
    return getattr(importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}"), resource_type)


# --- the generator alone -----------------------------------------------------------------------------------


def test_generation_is_deterministic():
    assert generated(30) == generated(30)
    assert synthetic.patient_bundle(7, ANCHOR) == synthetic.patient_bundle(7, ANCHOR)
    assert synthetic.patient_bundle(7, ANCHOR) != synthetic.patient_bundle(8, ANCHOR)


def test_a_patient_does_not_depend_on_how_many_there_are():
    assert synthetic.schedule_bundle(2, ANCHOR, 40)["Slot"] == synthetic.schedule_bundle(2, ANCHOR, 4000)["Slot"]
    for i in (0, 4, 999, 1000, 1234, 54321):
        j, rank = synthetic.practitioner_of(i)
        assert synthetic.panel_patient(j, rank) == i
        assert rank < synthetic.PANEL_SIZE
        assert j < synthetic.practitioner_count(i + 1)
    assert synthetic.practitioner_count(25) == 5
    assert synthetic.practitioner_count(100_000) == 500


def test_population_is_plausible():
    patients = [synthetic.patient_bundle(i, ANCHOR) for i in range(1200)]
    observations = [o for bundle in patients for o in bundle["Observation"]]
    assert 8.5 <= len(observations) / len(patients) <= 11.5  # ~10 observations a patient
    ages = [(ANCHOR - date.fromisoformat(b["Patient"][0]["birthDate"])).days / 365.25 for b in patients]
    assert min(ages) >= 0 and max(ages) < 96
    assert 0.15 < sum(age < 18 for age in ages) / len(ages) < 0.3
    assert 0.12 < sum(age >= 65 for age in ages) / len(ages) < 0.25
    genders = Counter(b["Patient"][0]["gender"] for b in patients)
    assert 0.4 < genders["female"] / len(patients) < 0.6
    assert 0.85 < sum(bool(b["Coverage"]) for b in patients) / len(patients) < 0.97
    assert len({b["Patient"][0]["name"][0]["family"] for b in patients}) > 100

    # A diabetic subset: high HbA1c goes with high glucose, for the same patient.
    def mean_of(code, ids):
        values = [
            o["valueQuantity"]["value"]
            for o in observations
            if o["code"]["coding"][0]["code"] == code and o["subject"]["reference"] in ids
        ]
        return sum(values) / len(values)

    a1c = {}
    for o in observations:
        if o["code"]["coding"][0]["code"] == "4548-4":
            a1c.setdefault(o["subject"]["reference"], []).append(o["valueQuantity"]["value"])
    diabetic = {ref for ref, values in a1c.items() if max(values) >= 6.5}
    normal = {ref for ref, values in a1c.items() if max(values) < 5.7}
    assert diabetic and normal
    assert mean_of("2345-7", diabetic) > mean_of("2345-7", normal) + 40

    # Children get vital signs only, sized for their age.
    for bundle in patients:
        birth = date.fromisoformat(bundle["Patient"][0]["birthDate"])
        for o in bundle["Observation"]:
            age = (datetime.fromisoformat(o["effectiveDateTime"]).date() - birth).days / 365.25
            assert age >= 0
            if age < 18:
                assert o["category"][0]["coding"][0]["code"] == "vital-signs"
            if o["code"]["coding"][0]["code"] == "8302-2":
                assert 40 < o["valueQuantity"]["value"] < 215
            if o["code"]["coding"][0]["code"] == "29463-7" and age < 1:
                assert o["valueQuantity"]["value"] < 14


def check_observation(body: dict, anchor: date) -> None:
    """Codes, units, category, dates, and each interpretation against its reference range."""
    code = body["code"]["coding"][0]
    assert code["system"] == "http://loinc.org"
    category = body["category"][0]["coding"][0]
    assert category["system"] == "http://terminology.hl7.org/CodeSystem/observation-category"
    assert category["code"] == synthetic.ANALYTES.get(code["code"], ("vital-signs",))[0]
    assert body["status"] == "final"
    assert body["subject"]["reference"].startswith("Patient/")
    assert body["performer"][0]["reference"].startswith(
        "Organization/" if category["code"] == "laboratory" else "Practitioner/"
    )
    effective = datetime.fromisoformat(body["effectiveDateTime"])
    assert effective.tzinfo is not None
    assert anchor - timedelta(days=3 * 366) <= effective.date() < anchor
    measured = body.get("component") or [body]
    if code["code"] == synthetic.BP_PANEL[0]:
        assert [c["code"]["coding"][0]["code"] for c in measured] == ["8480-6", "8462-4"]
        assert "valueQuantity" not in body
    for item in measured:
        quantity = item["valueQuantity"]
        item_code = item["code"]["coding"][0]["code"]
        assert quantity["system"] == UCUM
        assert quantity["code"] == synthetic.ANALYTES[item_code][4]
        ranges = item.get("referenceRange")
        if item_code in ("29463-7", "8302-2"):  # weight and height have no reference range
            assert ranges is None and "interpretation" not in item
            continue
        if ranges is None:  # BMI of a child: percentiles, not a range
            assert item_code == "39156-5" and "interpretation" not in item
            continue
        low = ranges[0].get("low", {}).get("value")
        high = ranges[0].get("high", {}).get("value")
        assert low is not None or high is not None
        for bound in ranges[0].values():
            assert bound["system"] == UCUM and bound["code"] == quantity["code"]
        expected = (
            "L"
            if low is not None and quantity["value"] < low
            else "H"
            if high is not None and (quantity["value"] > high)
            else "N"
        )
        interpretation = item["interpretation"][0]["coding"][0]
        assert interpretation["system"] == "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
        assert interpretation["code"] == expected, (body["id"], item_code, quantity["value"], low, high)


def test_observations_are_coherent():
    bodies = [o for i in range(300) for o in synthetic.patient_bundle(i, ANCHOR)["Observation"]]
    bodies += synthetic.demo_bundle(ANCHOR)["Observation"]
    for body in bodies:
        check_observation(body, ANCHOR)
    codes = {o["code"]["coding"][0]["code"] for o in bodies}
    assert codes >= {*synthetic.ANALYTES} - {"8480-6", "8462-4"} | {"85354-9"}
    assert {i["coding"][0]["code"] for o in bodies for i in o.get("interpretation", [])} == {"H", "L", "N"}
    # LDL is calculated (Friedewald) from the same draw's total cholesterol, HDL and triglycerides.
    by_time = {}
    for o in bodies:
        if o["category"][0]["coding"][0]["code"] == "laboratory":
            key = (o["subject"]["reference"], o["effectiveDateTime"])
            by_time.setdefault(key, {})[o["code"]["coding"][0]["code"]] = o["valueQuantity"]["value"]
    lipids = [v for v in by_time.values() if "13457-7" in v]
    assert lipids
    for v in lipids:
        assert v["13457-7"] == v["2093-3"] - v["2085-9"] - round(v["2571-8"] / 5)
        assert v["2571-8"] < 400


def test_slots_and_booked_appointments():
    bundle = synthetic.schedule_bundle(0, ANCHOR, 25)
    window_start, window_end = synthetic.window(ANCHOR)
    slots = {s["id"]: s for s in bundle["Slot"]}
    statuses = Counter(s["status"] for s in slots.values())
    assert statuses["free"] > statuses["busy"] > 0
    for slot in slots.values():
        start, end = datetime.fromisoformat(slot["start"]), datetime.fromisoformat(slot["end"])
        assert window_start <= start < end <= window_end
        assert start.weekday() < 5 and 8 <= start.hour < 17 and start.hour != 12
        assert (end - start) in (timedelta(minutes=15), timedelta(minutes=30))
    for appointment in bundle["Appointment"]:
        slot = slots[appointment["slot"][0]["reference"].removeprefix("Slot/")]
        assert slot["status"] == "busy"
        assert (appointment["start"], appointment["end"], appointment["status"]) == (
            slot["start"],
            slot["end"],
            "booked",
        )
        actors = [p["actor"]["reference"] for p in appointment["participant"]]
        assert actors[1] == "Practitioner/syn-pr-00000"
        assert date.fromisoformat(appointment["created"]) <= ANCHOR
    demo = [a for a in bundle["Appointment"] if a["participant"][0]["actor"]["reference"] == "Patient/demo-patient-1"]
    assert len(demo) == 1


# --- the seed, through the database ------------------------------------------------------------------------


@pytest.mark.django_db
def test_seed_is_deterministic_and_idempotent():
    first = seed_fhir_sandbox(patients=12, anchor=ANCHOR)
    bodies = stored()
    assert first["inserted"]["Patient"] == 13  # and the demo patient
    again = seed_fhir_sandbox(patients=12, anchor=ANCHOR)
    assert again["inserted"] == {}
    assert stored() == bodies
    for model in RESOURCE_MODELS.values():
        model.objects.all().delete()
    seed_fhir_sandbox(patients=12, anchor=ANCHOR)
    assert stored() == bodies == generated(12)


@pytest.mark.django_db
def test_a_larger_seed_adds_the_difference():
    seed_fhir_sandbox(patients=6, anchor=ANCHOR)
    small = synthetic_counts()
    grown = seed_fhir_sandbox(patients=30, anchor=ANCHOR)
    assert grown["inserted"]["Patient"] == 24
    assert "Organization" not in grown["inserted"]
    assert stored() == generated(30)
    assert all(synthetic_counts()[rt] >= n for rt, n in small.items())
    # Fewer patients than stored removes nothing.
    assert seed_fhir_sandbox(patients=3, anchor=ANCHOR)["inserted"] == {}
    assert Patient.objects.filter(synthetic=True).count() == 31


@pytest.mark.django_db
def test_changed_rows_are_kept_and_a_deleted_patient_comes_back_whole():
    seed_fhir_sandbox(patients=10, anchor=ANCHOR)
    slot = Slot.objects.filter(status="free").order_by("id").first()
    slot.status, slot.version_id = "busy", 2
    slot.body = {**slot.body, "status": "busy"}
    slot.save()
    Patient.objects.filter(id="syn-p-000003").delete()
    Observation.objects.filter(patient_id="syn-p-000003").exclude(id__endswith="-001").delete()
    result = seed_fhir_sandbox(patients=10, anchor=ANCHOR)
    assert result["inserted"]["Patient"] == 1
    slot.refresh_from_db()
    assert (slot.status, slot.version_id) == ("busy", 2)
    expected = generated(10)
    patient_rows = {key: body for key, body in stored().items() if "000003" in key[1] and "-s" not in key[1]}
    assert patient_rows == {key: body for key, body in expected.items() if "000003" in key[1] and "-s" not in key[1]}


@pytest.mark.django_db
def test_a_later_day_moves_the_slot_window_and_keeps_history():
    seed_fhir_sandbox(patients=5, anchor=ANCHOR)
    slots = set(Slot.objects.values_list("id", flat=True))
    later = ANCHOR + timedelta(days=7)
    result = seed_fhir_sandbox(patients=5, anchor=later)
    assert set(result["inserted"]) <= {"Slot", "Appointment"}
    assert slots < set(Slot.objects.values_list("id", flat=True))
    schedule = Schedule.objects.get(id="syn-sch-00000")
    assert schedule.version_id == 2
    assert schedule.body == synthetic.schedule_bundle(0, later, 5)["Schedule"][0]


@pytest.mark.django_db
def test_every_resource_type_is_valid_fhir_r4():
    seed_fhir_sandbox(patients=40, anchor=ANCHOR)
    for resource_type, model in RESOURCE_MODELS.items():
        rows = list(model.objects.filter(synthetic=True).order_by("id")[:: max(1, model.objects.count() // 60)])
        assert rows, resource_type
        for row in rows:
            resource = fhir_model(resource_type).model_validate(row.body | {"resourceType": resource_type})
            assert resource.id == row.id
            assert "meta" not in row.body


@pytest.mark.django_db
def test_typed_columns_match_the_bodies():
    seed_fhir_sandbox(patients=20, anchor=ANCHOR)
    for resource_type, model in RESOURCE_MODELS.items():
        names = typed_column_names(resource_type)
        for row in model.objects.all():
            assert row.body["resourceType"] == resource_type and row.body["id"] == row.id
            assert index_columns(resource_type, row.body) == {name: getattr(row, name) for name in names}
            assert (row.environment, row.synthetic, row.version_id) == ("sandbox", True, 1)
    for obs in Observation.objects.all():
        body = obs.body
        assert obs.patient_id == body["subject"]["reference"].split("/")[1]
        assert obs.category == body["category"][0]["coding"][0]["code"]
        assert obs.code == body["code"]["coding"][0]["code"]
        assert obs.effective == datetime.fromisoformat(body["effectiveDateTime"])
        check_observation(body, ANCHOR)
    for patient in Patient.objects.all():
        mrn = patient.body["identifier"][0]
        assert (patient.identifier_system, patient.identifier_value) == (synthetic.MRN_SYSTEM, mrn["value"])
        assert patient.family == patient.body["name"][0]["family"]
        assert patient.birth_date.isoformat() == patient.body["birthDate"]
        assert {"system": synthetic.SYNTHETIC_SYSTEM, "value": patient.id, "use": "secondary"} in patient.body[
            "identifier"
        ]
        assert patient.managing_organization_id.startswith("syn-org-clinic-")
    for coverage in RESOURCE_MODELS["Coverage"].objects.all():
        assert coverage.patient_id == coverage.body["beneficiary"]["reference"].split("/")[1]
        assert coverage.payor in ("syn-org-payer-1", "syn-org-payer-2")
        assert f"Organization/{coverage.payor}" == coverage.body["payor"][0]["reference"]
    for slot in Slot.objects.all():
        assert slot.start == datetime.fromisoformat(slot.body["start"])
        assert slot.schedule_id == slot.body["schedule"]["reference"].split("/")[1]
    for appointment in Appointment.objects.all():
        assert appointment.patient_id == appointment.body["participant"][0]["actor"]["reference"].split("/")[1]
        if appointment.status == "booked":
            assert Slot.objects.get(id=appointment.slot_id).status == "busy"
    mrns = list(Patient.objects.values_list("identifier_value", flat=True))
    assert len(mrns) == len(set(mrns))


# --- the command ----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_seed_sandbox_patients_option_and_the_demo_patient():
    out = StringIO()
    call_command("seed_sandbox", "--patients", "7", stdout=out)
    assert "FHIR sandbox" in out.getvalue()
    assert Patient.objects.filter(id__startswith="syn-p-").count() == 7
    demo = Patient.objects.get(id="demo-patient-1")
    assert demo.synthetic and demo.environment == "sandbox"
    assert (demo.given, demo.family, demo.gender) == ("Patricia", "Patient", "female")
    assert Observation.objects.filter(patient_id=demo.id, code="4548-4").count() >= 10
    assert Appointment.objects.filter(patient_id=demo.id, status="booked").count() == 1
    assert RESOURCE_MODELS["Coverage"].objects.filter(patient_id=demo.id, status="active").exists()
    in_care = set(
        CareRelationship.objects.filter(organization__slug=SANDBOX_PROVIDER_SLUG).values_list("patient_id", flat=True)
    )
    assert in_care == set(Patient.objects.values_list("id", flat=True))

    call_command("seed_sandbox", "--patients", "9", "--json", stdout=StringIO())
    assert Patient.objects.filter(id__startswith="syn-p-").count() == 9
    assert CareRelationship.objects.count() == 10
    with pytest.raises(CommandError):
        call_command("seed_sandbox", "--patients", "-1", stdout=StringIO())


@pytest.mark.postgres
@pytest.mark.django_db
def test_copy_path_stores_what_the_generator_made():
    seed_fhir_sandbox(patients=15, anchor=ANCHOR)
    assert stored() == generated(15)
    obs = Observation.objects.filter(patient_id="demo-patient-1").order_by("id").first()
    assert obs.effective == datetime.fromisoformat(obs.body["effectiveDateTime"])
