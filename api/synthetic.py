"""Deterministic, clinically plausible synthetic FHIR R4 data for the sandbox.

Pure generation, no database: ``api.seed`` stores what this module yields. Every resource is a
function of its own index and of the anchor date (the day the data is generated for), never of how
many patients are asked for, so seeding N patients and then M > N adds exactly the difference:

- ``organizations()``: three clinics, a reference laboratory and two payers.
- ``practitioner(j)``: a family physician with an NPI; practitioner ``j`` looks after a panel of up
  to ``PANEL_SIZE`` patients (``practitioner_of``/``panel_patient``), at least ``MIN_PRACTITIONERS``.
- ``patient_bundle(i, anchor)``: patient ``i`` (``syn-p-000123``), its Coverage (most patients), its
  Observations over the ``HISTORY_YEARS`` before the anchor (vital signs at visits, lab panels for
  adults; ~10 per patient on average) and the Appointments of some of those visits (fulfilled, a
  few cancelled).
- ``schedule_bundle(j, anchor, patients)``: practitioner ``j``'s Schedule, its Slots over the
  ``WINDOW_DAYS`` after the anchor (working days, 15- or 30-minute slots, busier near term) and a
  booked Appointment for each busy slot whose patient exists among the first ``patients``.
- ``demo_bundle(anchor)``: ``demo-patient-1``, the demo login's patient: a woman with type 2
  diabetes, hypertension and high cholesterol, seen quarterly, with a booked visit coming up.

Values come from per-patient baselines (latent conditions: diabetes, prediabetes, hypertension,
hyperlipidaemia, chronic kidney disease, anaemia, COPD, body size) plus visit-to-visit noise, so a
patient's results are correlated with each other and over time. Interpretations (H/L/N) are
computed from the value and the reference range given in the same resource; weight and height
carry neither (they have no reference range).

Determinism: every random stream is ``random.Random(<string key>)``, and only ``random()`` is drawn
from it (the helpers below build normal, choice and Poisson draws on it): Python guarantees that
sequence across versions, unlike ``gauss``, ``choice`` or ``randrange``.
"""

import bisect
import math
import random
import unicodedata
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

SEED = "marketplace-synthetic-v1"
CLINIC_TZ = ZoneInfo("America/Chicago")
HISTORY_YEARS = 3
WINDOW_DAYS = 14
PANEL_SIZE = 200
MIN_PRACTITIONERS = 5

DEMO_PATIENT_ID = "demo-patient-1"
SYNTHETIC_SYSTEM = "urn:marketplace:synthetic"
MRN_SYSTEM = "urn:oid:2.16.840.1.113883.19.5"  # HL7's OID for examples, "Good Health Clinic" MRNs
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
V2_0276 = "http://terminology.hl7.org/CodeSystem/v2-0276"
ORGANIZATION_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"
SERVICE_CATEGORY = "http://terminology.hl7.org/CodeSystem/service-category"
SERVICE_TYPE = "http://terminology.hl7.org/CodeSystem/service-type"
COVERAGE_CLASS = "http://terminology.hl7.org/CodeSystem/coverage-class"
SUBSCRIBER_RELATIONSHIP = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
MARITAL_STATUS = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
CANCELLATION_REASON = "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason"
QUALIFICATION = "http://terminology.hl7.org/CodeSystem/v2-0360"
LANGUAGE = "urn:ietf:bcp:47"


# --- ids -------------------------------------------------------------------------------------------


def patient_id(i: int) -> str:
    return f"syn-p-{i:06d}"


def practitioner_id(j: int) -> str:
    return f"syn-pr-{j:05d}"


def schedule_id(j: int) -> str:
    return f"syn-sch-{j:05d}"


def practitioner_count(patients: int) -> int:
    return max(MIN_PRACTITIONERS, math.ceil(patients / PANEL_SIZE))


def practitioner_of(i: int) -> tuple[int, int]:
    """(practitioner, rank in the practitioner's panel) of patient ``i``: the first
    ``MIN_PRACTITIONERS * PANEL_SIZE`` patients are dealt round-robin to the first practitioners (so
    a small sandbox spreads over all of them), then each further practitioner takes the next
    ``PANEL_SIZE``. Independent of how many patients there are."""
    if i < MIN_PRACTITIONERS * PANEL_SIZE:
        return i % MIN_PRACTITIONERS, i // MIN_PRACTITIONERS
    return i // PANEL_SIZE, i % PANEL_SIZE


def panel_patient(j: int, rank: int) -> int:
    """The inverse of ``practitioner_of``."""
    if j < MIN_PRACTITIONERS:
        return rank * MIN_PRACTITIONERS + j
    return j * PANEL_SIZE + rank


# --- random draws built on random() only -------------------------------------------------------------


class Draw:
    """A deterministic stream keyed by a string, with the draws the generator needs."""

    __slots__ = ("_random",)

    def __init__(self, key: str):
        self._random = random.Random(f"{SEED}:{key}").random

    def random(self) -> float:
        return self._random()

    def chance(self, p: float) -> bool:
        return self._random() < p

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self._random()

    def below(self, n: int) -> int:
        return min(int(self._random() * n), n - 1)

    def pick(self, items):
        return items[self.below(len(items))]

    def weighted(self, items, cumulative):
        return items[bisect.bisect_right(cumulative, self._random() * cumulative[-1])]

    def normal(self, mean: float, sd: float) -> float:
        # Box-Muller; 1 - random() is in (0, 1], so the log is defined.
        return mean + sd * math.sqrt(-2.0 * math.log(1.0 - self._random())) * math.cos(2 * math.pi * self._random())

    def poisson(self, lam: float) -> int:
        limit, k, product = math.exp(-lam), 0, self._random()
        while product > limit:
            k += 1
            product *= self._random()
        return k


def _cumulative(weights):
    total, out = 0.0, []
    for weight in weights:
        total += weight
        out.append(total)
    return out


def _clip(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _luhn_digit(digits: str) -> str:
    total = 0
    for position, char in enumerate(reversed(digits)):
        d = int(char)
        if position % 2 == 0:  # the rightmost digit of the payload is doubled (the check digit follows it)
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def npi(base: int) -> str:
    """A 10-digit NPI-style number with a valid check digit (Luhn over the ``80840`` prefix)."""
    body = f"{1 + base % 2}{(base * 7919 + 1_000_003) % 10**8:08d}"
    return body + _luhn_digit("80840" + body)


def mrn(i: int) -> str:
    """8 digits and a check digit; a bijection of ``i`` for fewer than ten million patients."""
    body = f"2{(i * 7919 + 104_729) % 10**7:07d}"
    return body + _luhn_digit(body)


DEMO_MRN = "10000000" + _luhn_digit("10000000")  # generated MRNs start with 2: never the same


# --- names, places ----------------------------------------------------------------------------------

# (weight, female given names, male given names, family names ("_" for a space), (language, display, share
# preferring it))
NAME_GROUPS = (
    (
        40,
        "Olivia Emma Charlotte Amelia Harper Evelyn Abigail Emily Elizabeth Hannah Grace Madison Patricia Linda "
        "Barbara Susan Margaret Dorothy Betty Helen Karen Nancy Deborah Rebecca Claire Maeve Siobhan Ingrid",
        "Liam Noah Oliver James William Henry Benjamin Theodore Jack Owen Wyatt Robert John Michael David Richard "
        "Thomas Charles George Donald Kenneth Gary Paul Sean Cormac Lars Erik Brian",
        "Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Thomas Taylor Moore Martin Thompson White "
        "Clark Lewis Walker Hall Allen Wright Scott Hill Green Adams Baker Nelson Carter Mitchell Campbell Roberts "
        "Murphy Kelly O'Brien Schmidt Müller Larson Olson Becker Rossi Russo",
        ("en", "English", 1.0),
    ),
    (
        19,
        "Sofia Camila Valentina Lucía Ximena Guadalupe María Ana Gabriela Marisol Rosa Daniela Isabella Carmen "
        "Alejandra Fernanda Paola Verónica",
        "Mateo Santiago Diego Alejandro José Luis Juan Carlos Miguel Javier Jorge Manuel Ricardo Andrés Eduardo "
        "Fernando Raúl Emiliano",
        "Garcia Rodriguez Martinez Hernandez Lopez Gonzalez Perez Sanchez Ramirez Torres Flores Rivera Gomez Diaz "
        "Cruz Morales Reyes Ortiz Gutierrez Chavez Ramos Mendoza Ruiz Alvarez Castillo Jimenez Vasquez Silva Santos",
        ("es", "Spanish", 0.45),
    ),
    (
        13,
        "Imani Aaliyah Nia Keisha Ebony Jasmine Destiny Kiara Tamika Latoya Aisha Zuri Chioma Adaeze Ngozi Ama "
        "Abena Folake",
        "Jamal DeShawn Malik Darnell Tyrone Andre Marcus Terrence Jermaine Darius Xavier Chinedu Emeka Oluwaseun "
        "Kwame Kofi Tunde Ikenna",
        "Jackson Washington Robinson Harris Johnson Williams Brown Davis Jones Okafor Adeyemi Mensah Okonkwo "
        "Boateng Owusu Banks Freeman Coleman Simmons Brooks",
        ("en", "English", 1.0),
    ),
    (
        7,
        "Mei Xiu Yan Hui Ying Jing Li Na Fang Min-ji Seo-yeon Ji-woo Yuki Hana Sakura Aiko Linh Thu Ngoc Lan "
        "Maricel Rosalind Jocelyn",
        "Wei Jun Hao Jian Lei Bo Min-jun Ji-ho Seo-jun Hiroshi Kenji Takumi Minh Duc Tuan Quang Jose Rodel Arnel",
        "Chen Wang Li Zhang Liu Huang Zhao Wu Kim Park Choi Lee Jung Yamamoto Tanaka Sato Suzuki Nguyen Tran Pham "
        "Le Hoang Vu Reyes Santos Bautista Dela_Cruz",
        ("zh", "Chinese", 0.35),
    ),
    (
        6,
        "Priya Ananya Aditi Deepika Lakshmi Kavya Sneha Pooja Fatima Aisha Amina Zainab Layla Mariam Noor Sara "
        "Yasmin Huda",
        "Arjun Rohan Vikram Rahul Sanjay Amit Ravi Anil Mohammed Ahmed Omar Yusuf Ali Hassan Ibrahim Khalid Tariq "
        "Karim",
        "Patel Shah Singh Kumar Gupta Reddy Sharma Iyer Rao Desai Khan Rahman Ahmed Hussain Abdullah Haddad Khalil "
        "Nasser Farah Qureshi",
        ("ar", "Arabic", 0.2),
    ),
    (
        5,
        "Olga Katarzyna Agnieszka Svetlana Natalia Irina Anna Magdalena Tamar Noa Leilani Malia Kalani Winona "
        "Nizhoni Talia Elena Daria",
        "Dmitri Piotr Tomasz Andrzej Sergei Pavel Ivan Eitan Ariel Kai Keanu Makoa Ahanu Dakota Nikolai Marek "
        "Jakub Yosef",
        "Kowalski Nowak Wisniewski Ivanov Petrov Smirnov Novak Cohen Levi Friedman Kahananui Akana Begay Yazzie "
        "Tsosie Benally Kuznetsov Zielinski",
        ("pl", "Polish", 0.25),
    ),
)
_GROUPS = tuple(
    (female.split(), male.split(), [name.replace("_", " ") for name in family.split()], language)
    for _, female, male, family, language in NAME_GROUPS
)
_GROUP_CUMULATIVE = _cumulative([group[0] for group in NAME_GROUPS])
_ALL_FAMILY = tuple(name for group in _GROUPS for name in group[2])

STREETS = (
    "Oak", "Maple", "Cedar", "Pine", "Elm", "Walnut", "Chestnut", "Willow", "Birch", "Hickory", "Washington",
    "Lincoln", "Jefferson", "Madison", "Lake", "Hill", "Park", "Sunset", "Prairie", "Meadow", "River", "Church",
    "Spring", "Orchard", "Mill", "Ridge", "Grand", "Market", "Locust", "Poplar",
)  # fmt: skip
STREET_SUFFIXES = ("Street", "Avenue", "Drive", "Lane", "Road", "Court", "Boulevard", "Place")
# (city, state, ZIP codes, area codes)
CITIES = (
    ("Springfield", "IL", ("62701", "62702", "62703", "62704", "62711", "62712"), ("217",)),
    ("Peoria", "IL", ("61602", "61603", "61604", "61614", "61615"), ("309",)),
    ("Bloomington", "IL", ("61701", "61704", "61705"), ("309",)),
    ("Normal", "IL", ("61761",), ("309",)),
    ("Champaign", "IL", ("61820", "61821", "61822"), ("217", "447")),
    ("Urbana", "IL", ("61801", "61802"), ("217", "447")),
    ("Decatur", "IL", ("62521", "62522", "62526"), ("217",)),
    ("Pekin", "IL", ("61554",), ("309",)),
    ("Danville", "IL", ("61832",), ("217",)),
    ("Lincoln", "IL", ("62656",), ("217",)),
)
_CITY_CUMULATIVE = _cumulative([30, 22, 14, 6, 12, 7, 9, 4, 3, 2])


def _phone(draw: Draw, area_codes) -> str:
    # 555-0100..555-0199 are reserved for fiction: a synthetic number never reaches a real person.
    return f"({draw.pick(area_codes)}) 555-01{draw.below(100):02d}"


def _address(draw: Draw) -> tuple[dict, tuple]:
    city, state, zips, area_codes = draw.weighted(CITIES, _CITY_CUMULATIVE)
    line = f"{100 + draw.below(9800)} {draw.pick(STREETS)} {draw.pick(STREET_SUFFIXES)}"
    lines = [line, f"Apt {1 + draw.below(30)}{'ABCD'[draw.below(4)]}"] if draw.chance(0.15) else [line]
    address = {
        "use": "home",
        "type": "physical",
        "line": lines,
        "city": city,
        "state": state,
        "postalCode": draw.pick(zips),
        "country": "US",
    }
    return address, area_codes


# --- organizations and practitioners -----------------------------------------------------------------

CLINICS = (
    ("syn-org-clinic-1", "Prairie View Family Medicine", "1200 Prairie Avenue", "Springfield", "62704", "217"),
    ("syn-org-clinic-2", "Lakeshore Community Health Center", "415 Lake Street", "Peoria", "61602", "309"),
    ("syn-org-clinic-3", "Riverbend Internal Medicine & Pediatrics", "88 River Road", "Champaign", "61820", "217"),
)
LAB = ("syn-org-lab-1", "Midwest Regional Reference Laboratory", "2600 Research Parkway", "Bloomington", "61704", "309")
# (id, name, plan class value, plan name, coverage type code, its display)
PAYERS = (
    (
        "syn-org-payer-1",
        "Blue Meadow Health Plan",
        "BMHP-PPO",
        "Blue Meadow PPO",
        "HIP",
        "health insurance plan policy",
    ),
    (
        "syn-org-payer-2",
        "Heartland Public Health Partners",
        "HPHP-MA",
        "Heartland Medicare Advantage & Medicaid",
        "PUBLICPOL",
        "public healthcare",
    ),
)
_ORG_TYPE_DISPLAY = {"prov": "Healthcare Provider", "pay": "Payer"}


def _organization(org_id, name, line, city, postal_code, area_code, org_type, number) -> dict:
    return {
        "resourceType": "Organization",
        "id": org_id,
        "identifier": [{"system": NPI_SYSTEM, "value": npi(900_000 + number)}],
        "active": True,
        "type": [{"coding": [{"system": ORGANIZATION_TYPE, "code": org_type, "display": _ORG_TYPE_DISPLAY[org_type]}]}],
        "name": name,
        "telecom": [{"system": "phone", "value": f"({area_code}) 555-01{number:02d}", "use": "work"}],
        "address": [
            {"use": "work", "line": [line], "city": city, "state": "IL", "postalCode": postal_code, "country": "US"}
        ],
    }


def organizations() -> list[dict]:
    bodies = [_organization(*clinic, "prov", n) for n, clinic in enumerate(CLINICS)]
    bodies.append(_organization(*LAB, "prov", len(CLINICS)))
    for n, (org_id, name, *_rest) in enumerate(PAYERS):
        bodies.append(_organization(org_id, name, "1 Insurance Plaza", "Chicago", "60606", "312", "pay", 10 + n))
    return bodies


def _reference(resource_type: str, resource_id: str, display: str | None = None) -> dict:
    reference = {"reference": f"{resource_type}/{resource_id}"}
    if display:
        reference["display"] = display
    return reference


@lru_cache(maxsize=4096)
def _practitioner_traits(j: int) -> dict:
    draw = Draw(f"practitioner:{j}")
    female = draw.chance(0.52)
    group = draw.weighted(_GROUPS, _GROUP_CUMULATIVE)
    given = draw.pick(group[0] if female else group[1])
    family = draw.pick(group[2])
    degree = draw.weighted(("MD", "DO"), (0.85, 1.0))
    return {
        "female": female,
        "given": given,
        "family": family,
        "display": f"Dr. {given} {family}",
        "degree": degree,
        "clinic": j % len(CLINICS),
        "slot_minutes": 15 if draw.chance(0.5) else 30,
        "afternoon_off": draw.below(5),  # weekday (Mon=0) without afternoon hours
    }


def practitioner(j: int) -> dict:
    traits = _practitioner_traits(j)
    area_code = CLINICS[traits["clinic"]][-1]
    degree = traits["degree"]
    return {
        "resourceType": "Practitioner",
        "id": practitioner_id(j),
        "identifier": [{"system": NPI_SYSTEM, "value": npi(j)}],
        "active": True,
        "name": [
            {
                "use": "official",
                "family": traits["family"],
                "given": [traits["given"]],
                "prefix": ["Dr."],
                "suffix": [degree],
            }
        ],
        "telecom": [{"system": "phone", "value": f"({area_code}) 555-01{j % 100:02d}", "use": "work"}],
        "gender": "female" if traits["female"] else "male",
        "qualification": [
            {
                "code": {
                    "coding": [
                        {
                            "system": QUALIFICATION,
                            "code": degree,
                            "display": "Doctor of Medicine" if degree == "MD" else "Doctor of Osteopathy",
                        }
                    ]
                },
                "issuer": {"display": "Illinois Department of Financial and Professional Regulation"},
            }
        ],
    }


# --- the clinical model --------------------------------------------------------------------------------

# Share of the population in 5-year bands 0-4 ... 85-89, and 90-95 (six years).
AGE_BANDS = tuple(range(0, 95, 5))
_AGE_CUMULATIVE = _cumulative(
    [5.7, 6.0, 6.3, 6.4, 6.5, 6.9, 6.9, 6.6, 6.3, 6.0, 6.2, 6.4, 6.3, 5.4, 4.4, 3.0, 1.9, 1.2, 0.7]
)
# Age (years) -> median height cm (boys, girls), median weight kg (boys, girls): CDC/WHO growth charts.
GROWTH = (
    (0.0, 49.9, 49.1, 3.3, 3.2),
    (0.5, 67.6, 65.7, 7.9, 7.3),
    (1.0, 75.7, 74.0, 9.6, 8.9),
    (2.0, 87.1, 85.7, 12.2, 11.5),
    (3.0, 96.1, 95.1, 14.3, 13.9),
    (4.0, 103.3, 102.7, 16.3, 16.1),
    (5.0, 110.0, 109.4, 18.4, 18.2),
    (6.0, 116.0, 115.1, 20.7, 20.2),
    (8.0, 127.3, 126.6, 25.6, 25.0),
    (10.0, 137.8, 138.6, 31.2, 31.9),
    (12.0, 149.1, 151.2, 39.9, 41.5),
    (14.0, 163.2, 159.8, 50.8, 49.4),
    (16.0, 173.4, 162.5, 61.3, 53.5),
    (18.0, 176.1, 163.1, 67.2, 56.4),
)
_GROWTH_AGES = [row[0] for row in GROWTH]


def _growth(age: float, male: bool) -> tuple[float, float]:
    """Median (height cm, weight kg) at ``age`` years, interpolated."""
    if age >= 18:
        row = GROWTH[-1]
        return (row[1], row[3]) if male else (row[2], row[4])
    k = bisect.bisect_right(_GROWTH_AGES, age) - 1
    a, b = GROWTH[k], GROWTH[k + 1]
    t = (age - a[0]) / (b[0] - a[0])
    h = (a[1] + t * (b[1] - a[1])) if male else (a[2] + t * (b[2] - a[2]))
    w = (a[3] + t * (b[3] - a[3])) if male else (a[4] + t * (b[4] - a[4]))
    return h, w


class Profile:
    """One patient's latent state: who they are and what their body does."""

    __slots__ = (
        "a1c",
        "a1c_trend",
        "afib",
        "anemic",
        "birth",
        "bmi",
        "bmi_trend",
        "bun",
        "ca",
        "ckd",
        "co2",
        "copd",
        "creatinine",
        "dbp",
        "diabetic",
        "glucose",
        "hb",
        "hdl",
        "height_z",
        "hr",
        "hyperlipidemic",
        "hypertensive",
        "id",
        "k",
        "male",
        "mch",
        "plt",
        "prediabetic",
        "sbp",
        "spo2",
        "tc",
        "tg",
        "wbc",
        "weight_z",
    )

    def age_at(self, day: date) -> float:
        return (day - self.birth).days / 365.25


def _prevalence(age: float, table) -> float:
    for upper, p in table:
        if age < upper:
            return p
    return table[-1][1]


def _profile(draw: Draw, resource_id: str, male: bool, birth: date, anchor: date) -> Profile:
    """Conditions and baselines, drawn once per patient (a fixed number of draws, in a fixed order)."""
    p = Profile()
    p.id, p.male, p.birth = resource_id, male, birth
    age = p.age_at(anchor)
    adult = age >= 18
    p.height_z = draw.normal(0, 1)
    p.weight_z = draw.normal(0, 1)
    median_bmi = 24.5 if age < 25 else 27.5 if age < 40 else 29.0 if age < 65 else 28.0
    p.bmi = _clip(median_bmi * math.exp(draw.normal(0, 0.18)), 16.5, 58.0)
    p.bmi_trend = draw.normal(0.1, 0.35)  # kg/m2 per year
    obese = p.bmi >= 32
    diabetes = _prevalence(age, ((18, 0.003), (45, 0.04), (65, 0.14), (200, 0.22))) * (1.8 if obese else 1.0)
    p.diabetic = adult and draw.chance(diabetes)
    p.prediabetic = adult and not p.diabetic and draw.chance(0.22 if age < 45 else 0.33)
    hypertension = _prevalence(age, ((18, 0.0), (40, 0.08), (60, 0.33), (200, 0.6))) * (1.4 if obese else 1.0)
    p.hypertensive = draw.chance(hypertension)
    p.hyperlipidemic = adult and draw.chance((0.08 if age < 40 else 0.3) * (1.5 if p.diabetic else 1.0))
    ckd = _prevalence(age, ((18, 0.0), (65, 0.03), (200, 0.12))) + (0.1 if p.diabetic else 0.0)
    p.ckd = adult and draw.chance(ckd)
    p.anemic = draw.chance((0.02 if male else 0.06) + (0.04 if age >= 65 else 0.0) + (0.08 if p.ckd else 0.0))
    p.copd = age >= 40 and draw.chance(0.05 + (0.04 if age >= 65 else 0.0))
    p.afib = age >= 60 and draw.chance(0.06)
    # Baselines: the patient's usual value; each visit adds noise around it.
    if p.diabetic:
        p.a1c = _clip(draw.normal(7.6, 1.1), 6.3, 12.5)
    elif p.prediabetic:
        p.a1c = _clip(draw.normal(6.0, 0.2), 5.7, 6.4)
    else:
        p.a1c = _clip(draw.normal(5.2, 0.22), 4.4, 5.6)
    p.a1c_trend = draw.normal(0.0, 0.15) if p.diabetic else 0.0  # % per year
    p.glucose = draw.normal(101, 6) if p.prediabetic else draw.normal(88, 6)
    p.bun = _clip(draw.normal(13, 3) + (2 if age >= 65 else 0) + (9 if p.ckd else 0), 5, 70)
    p.creatinine = _clip(draw.normal(0.98 if male else 0.78, 0.13 if male else 0.1), 0.45, 1.5)
    if p.ckd:
        p.creatinine *= _clip(draw.normal(1.6, 0.3), 1.2, 3.5)
    else:
        draw.random()
    p.k = draw.normal(4.2, 0.22) + (0.35 if p.ckd else 0.0)
    p.co2 = draw.normal(25.5, 1.4) - (2.5 if p.ckd else 0.0)
    p.ca = draw.normal(9.5, 0.25)
    p.hb = draw.normal(15.1 if male else 13.5, 0.9) - (2.6 if p.anemic else 0.0) - (1.0 if p.ckd else 0.0)
    p.mch = draw.normal(30.0, 1.3) - (4.0 if p.anemic and not p.ckd else 0.0)
    p.wbc = math.exp(draw.normal(math.log(6.8), 0.2))
    p.plt = _clip(draw.normal(255, 55), 95, 560)
    p.tc = draw.normal(168 + 0.5 * _clip(age - 30, 0, 40), 27) + (32 if p.hyperlipidemic else 0)
    p.hdl = _clip(draw.normal(47 if male else 58, 10) - (5 if p.diabetic else 0) - 0.5 * (p.bmi - 27), 22, 105)
    p.tg = _clip(
        math.exp(draw.normal(math.log(100), 0.38)) * (1.45 if p.diabetic else 1.0) * (1 + 0.03 * (p.bmi - 27)),
        35,
        900,
    )
    if age < 18:
        p.sbp = draw.normal(90 + 1.5 * age, 7)
        p.dbp = draw.normal(52 + 1.0 * age, 5)
    else:
        p.sbp = draw.normal(106 + 0.42 * (age - 18), 9) + (16 if p.hypertensive else 0)
        p.dbp = draw.normal(68 + 0.15 * min(age, 60) - 0.25 * max(age - 60, 0) - 2.7, 6) + (8 if p.hypertensive else 0)
    p.hr = draw.normal(72, 7) + (4 if p.diabetic else 0)
    p.spo2 = 93.0 if p.copd else 98.0
    return p


# --- observations ---------------------------------------------------------------------------------------


def _coding(system: str, code: str, display: str) -> dict:
    return {"system": system, "code": code, "display": display}


CATEGORIES = {
    "laboratory": [{"coding": [_coding(OBSERVATION_CATEGORY, "laboratory", "Laboratory")], "text": "Laboratory"}],
    "vital-signs": [{"coding": [_coding(OBSERVATION_CATEGORY, "vital-signs", "Vital Signs")], "text": "Vital Signs"}],
}
INTERPRETATIONS = {
    code: [{"coding": [_coding(INTERPRETATION_SYSTEM, code, display)], "text": display}]
    for code, display in (("H", "High"), ("L", "Low"), ("N", "Normal"))
}

# code -> (category, display, text, unit shown, UCUM code, decimals)
ANALYTES = {
    "6690-2": ("laboratory", "Leukocytes [#/volume] in Blood by Automated count", "WBC", "10*3/uL", "10*3/uL", 1),
    "789-8": ("laboratory", "Erythrocytes [#/volume] in Blood by Automated count", "RBC", "10*6/uL", "10*6/uL", 2),
    "718-7": ("laboratory", "Hemoglobin [Mass/volume] in Blood", "Hemoglobin", "g/dL", "g/dL", 1),
    "4544-3": ("laboratory", "Hematocrit [Volume Fraction] of Blood by Automated count", "Hematocrit", "%", "%", 1),
    "777-3": ("laboratory", "Platelets [#/volume] in Blood by Automated count", "Platelets", "10*3/uL", "10*3/uL", 0),
    "2345-7": ("laboratory", "Glucose [Mass/volume] in Serum or Plasma", "Glucose", "mg/dL", "mg/dL", 0),
    "3094-0": ("laboratory", "Urea nitrogen [Mass/volume] in Serum or Plasma", "BUN", "mg/dL", "mg/dL", 0),
    "2160-0": ("laboratory", "Creatinine [Mass/volume] in Serum or Plasma", "Creatinine", "mg/dL", "mg/dL", 2),
    "2951-2": ("laboratory", "Sodium [Moles/volume] in Serum or Plasma", "Sodium", "mmol/L", "mmol/L", 0),
    "2823-3": ("laboratory", "Potassium [Moles/volume] in Serum or Plasma", "Potassium", "mmol/L", "mmol/L", 1),
    "2075-0": ("laboratory", "Chloride [Moles/volume] in Serum or Plasma", "Chloride", "mmol/L", "mmol/L", 0),
    "2028-9": ("laboratory", "Carbon dioxide, total [Moles/volume] in Serum or Plasma", "CO2", "mmol/L", "mmol/L", 0),
    "17861-6": ("laboratory", "Calcium [Mass/volume] in Serum or Plasma", "Calcium", "mg/dL", "mg/dL", 1),
    "2093-3": ("laboratory", "Cholesterol [Mass/volume] in Serum or Plasma", "Total cholesterol", "mg/dL", "mg/dL", 0),
    "2085-9": (
        "laboratory",
        "Cholesterol in HDL [Mass/volume] in Serum or Plasma",
        "HDL cholesterol",
        "mg/dL",
        "mg/dL",
        0,
    ),
    "13457-7": (
        "laboratory",
        "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation",
        "LDL cholesterol (calculated)",
        "mg/dL",
        "mg/dL",
        0,
    ),
    "2571-8": ("laboratory", "Triglyceride [Mass/volume] in Serum or Plasma", "Triglycerides", "mg/dL", "mg/dL", 0),
    "4548-4": ("laboratory", "Hemoglobin A1c/Hemoglobin.total in Blood", "Hemoglobin A1c", "%", "%", 1),
    "8867-4": ("vital-signs", "Heart rate", "Heart rate", "beats/minute", "/min", 0),
    "29463-7": ("vital-signs", "Body weight", "Body weight", "kg", "kg", 1),
    "8302-2": ("vital-signs", "Body height", "Body height", "cm", "cm", 1),
    "39156-5": ("vital-signs", "Body mass index (BMI) [Ratio]", "BMI", "kg/m2", "kg/m2", 1),
    "8310-5": ("vital-signs", "Body temperature", "Body temperature", "C", "Cel", 1),
    "59408-5": ("vital-signs", "Oxygen saturation in Arterial blood by Pulse oximetry", "SpO2", "%", "%", 0),
    "8480-6": ("vital-signs", "Systolic blood pressure", "Systolic blood pressure", "mmHg", "mm[Hg]", 0),
    "8462-4": ("vital-signs", "Diastolic blood pressure", "Diastolic blood pressure", "mmHg", "mm[Hg]", 0),
}
BP_PANEL = ("85354-9", "Blood pressure panel with all children optional", "Blood pressure")
# The vital-signs profile also asks for LOINC's generic oxygen saturation code beside 59408-5.
EXTRA_CODINGS = {"59408-5": [_coding(LOINC, "2708-6", "Oxygen saturation in Arterial blood")]}
PANELS = {
    "cbc": ("6690-2", "789-8", "718-7", "4544-3", "777-3"),
    "bmp": ("2345-7", "3094-0", "2160-0", "2951-2", "2823-3", "2075-0", "2028-9", "17861-6"),
    "lipid": ("2093-3", "2085-9", "13457-7", "2571-8"),
    "a1c": ("4548-4",),
}

_CODES = {
    code: {"coding": [_coding(LOINC, code, spec[1]), *EXTRA_CODINGS.get(code, [])], "text": spec[2]}
    for code, spec in ANALYTES.items()
}
_CODES[BP_PANEL[0]] = {"coding": [_coding(LOINC, BP_PANEL[0], BP_PANEL[1])], "text": BP_PANEL[2]}


def _quantity(code: str, value) -> dict:
    spec = ANALYTES[code]
    return {"value": value, "unit": spec[3], "system": UCUM, "code": spec[4]}


# (low, high) per analyte; None where a bound is not reported. Sex-specific ones: (male, female).
LAB_RANGES = {
    "6690-2": (4.5, 11.0),
    "777-3": (150, 400),
    "2345-7": (70, 99),
    "3094-0": (7, 20),
    "2951-2": (135, 145),
    "2823-3": (3.5, 5.1),
    "2075-0": (98, 107),
    "2028-9": (22, 29),
    "17861-6": (8.6, 10.3),
    "2093-3": (100, 199),
    "2085-9": (40, None),
    "13457-7": (None, 99),
    "2571-8": (None, 149),
    "4548-4": (4.0, 5.6),
}
SEXED_RANGES = {
    "789-8": ((4.5, 5.9), (4.1, 5.1)),
    "718-7": ((13.5, 17.5), (12.0, 15.5)),
    "4544-3": ((41.0, 53.0), (36.0, 46.0)),
    "2160-0": ((0.74, 1.35), (0.59, 1.04)),
}


def _vital_range(code: str, age: float):
    if code == "8867-4":
        return _prevalence(age, ((1, (100, 160)), (3, (90, 150)), (6, (80, 140)), (12, (70, 120)), (200, (60, 100))))
    if code == "8480-6":
        return (80, 115) if age < 13 else (90, 119)
    if code == "8462-4":
        return (45, 75) if age < 13 else (60, 79)
    if code == "8310-5":
        return (36.1, 37.2)
    if code == "59408-5":
        return (95, 100)
    if code == "39156-5":
        return (18.5, 24.9) if age >= 18 else None
    return None  # weight, height


@lru_cache(maxsize=512)
def _reference_range(code: str, low, high) -> list:
    spec = ANALYTES[code]
    entry = {}
    if low is not None:
        entry["low"] = {"value": low, "unit": spec[3], "system": UCUM, "code": spec[4]}
    if high is not None:
        entry["high"] = {"value": high, "unit": spec[3], "system": UCUM, "code": spec[4]}
    return [entry]


def interpretation_code(value, low, high) -> str:
    if low is not None and value < low:
        return "L"
    if high is not None and value > high:
        return "H"
    return "N"


def _round(value: float, decimals: int):
    return round(value) if decimals == 0 else round(value, decimals)


def _measured(code: str, raw: float, bounds) -> dict:
    """valueQuantity, and referenceRange plus interpretation where the measurement has a range."""
    value = _round(raw, ANALYTES[code][5])
    fields = {"valueQuantity": _quantity(code, value)}
    if bounds is not None:
        low, high = bounds
        fields["interpretation"] = INTERPRETATIONS[interpretation_code(value, low, high)]
        fields["referenceRange"] = _reference_range(code, low, high)
    return fields


class Visit:
    """One encounter: when, with whom, what was measured."""

    __slots__ = ("cancelled_before", "has_appointment", "labs", "practitioner", "start", "vitals")

    def __init__(self, start: datetime, practitioner: int, vitals: tuple, labs: tuple):
        self.start, self.practitioner, self.vitals, self.labs = start, practitioner, vitals, labs
        self.has_appointment = False
        self.cancelled_before = False


def _observation(oid: str, subject: dict, code: str, category: str, effective: str, performer: dict, fields):
    body = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": CATEGORIES[category],
        "code": _CODES[code],
        "subject": subject,
        "effectiveDateTime": effective,
        "performer": [performer],
    }
    body.update(fields)
    return body


def _lab_values(draw: Draw, p: Profile, panel: str, years: float) -> list[tuple[str, float]]:
    """(code, raw value) of one panel drawn now; ``years`` since the start of the history."""
    if panel == "a1c":
        sd = 0.4 if p.diabetic else 0.12
        return [("4548-4", _clip(p.a1c + p.a1c_trend * years + draw.normal(0, sd), 4.0, 14.5))]
    if panel == "cbc":
        hb = _clip(p.hb + draw.normal(0, 0.35), 6.5, 19.5)
        wbc = p.wbc * math.exp(draw.normal(0, 0.12)) * (1.7 if draw.chance(0.03) else 1.0)
        rbc = hb * 10 / _clip(p.mch + draw.normal(0, 0.4), 20, 36)
        hct = hb * 100 / draw.normal(33.5, 0.6)
        return [("6690-2", wbc), ("789-8", rbc), ("718-7", hb), ("4544-3", hct), ("777-3", p.plt + draw.normal(0, 15))]
    if panel == "bmp":
        if p.diabetic:
            a1c = p.a1c + p.a1c_trend * years
            glucose = 28.7 * a1c - 46.7 + draw.normal(0, 22)
        else:
            glucose = p.glucose + draw.normal(0, 6)
        sodium = draw.normal(140, 1.8)
        co2 = p.co2 + draw.normal(0, 1.2)
        chloride = sodium - co2 - draw.normal(12.5, 1.8)  # the anion gap holds them together
        return [
            ("2345-7", _clip(glucose, 48, 480)),
            ("3094-0", _clip(p.bun + draw.normal(0, 2.2), 4, 90)),
            ("2160-0", _clip(p.creatinine * math.exp(draw.normal(0, 0.06)), 0.3, 9.0)),
            ("2951-2", _clip(sodium, 126, 152)),
            ("2823-3", _clip(p.k + draw.normal(0, 0.2), 2.8, 6.6)),
            ("2075-0", _clip(chloride, 88, 118)),
            ("2028-9", _clip(co2, 14, 34)),
            ("17861-6", _clip(p.ca + draw.normal(0, 0.18), 7.4, 11.4)),
        ]
    # lipid panel; LDL by Friedewald, not reported when triglycerides are 400 mg/dL or more
    hdl = _clip(p.hdl + draw.normal(0, 3), 20, 110)
    tg = _clip(p.tg * math.exp(draw.normal(0, 0.18)), 35, 1200)
    tc = max(p.tc + draw.normal(0, 9), hdl + tg / 5 + 35)
    hdl, tg, tc = round(hdl), round(tg), round(tc)
    values = [("2093-3", tc), ("2085-9", hdl)]
    if tg < 400:
        values.append(("13457-7", tc - hdl - round(tg / 5)))
    values.append(("2571-8", tg))
    return values


def _lab_bounds(code: str, male: bool):
    bounds = LAB_RANGES.get(code)
    if bounds is None:
        male_range, female_range = SEXED_RANGES[code]
        return male_range if male else female_range
    return bounds


def _observations(draw: Draw, p: Profile, visits: list[Visit], prefix: str, history_start: date) -> list[dict]:
    subject = _reference("Patient", p.id)
    lab = _reference("Organization", LAB[0], LAB[1])
    bodies, n = [], 0
    adult_height = _growth(18, p.male)[0] * (1 + 0.038 * p.height_z)
    for visit in visits:
        day = visit.start.date()
        age = p.age_at(day)
        years = (day - history_start).days / 365.25
        traits = _practitioner_traits(visit.practitioner)
        performer = _reference("Practitioner", practitioner_id(visit.practitioner), traits["display"])
        when = (visit.start + timedelta(minutes=5 + draw.below(8))).isoformat()
        febrile = draw.chance(0.04)
        median_height, median_weight = _growth(age, p.male)
        height = adult_height if age >= 18 else median_height * (1 + 0.038 * p.height_z)
        if age >= 18:
            weight = (p.bmi + p.bmi_trend * years + draw.normal(0, 0.35)) * (height / 100) ** 2
        else:
            weight = median_weight * math.exp(0.12 * p.weight_z + draw.normal(0, 0.02))
        for code in visit.vitals:
            if code == BP_PANEL[0]:
                sbp = p.sbp + draw.normal(0, 7)
                dbp = min(p.dbp + draw.normal(0, 5), sbp - 22)
                components = []
                for part, raw in (("8480-6", sbp), ("8462-4", dbp)):
                    components.append({"code": _CODES[part], **_measured(part, raw, _vital_range(part, age))})
                n += 1
                body = _observation(f"{prefix}{n:03d}", subject, code, "vital-signs", when, performer, {})
                body["component"] = components
                bodies.append(body)
                continue
            if code == "8867-4":
                if age < 18:
                    low, high = _vital_range(code, age)
                    raw = (low + high) / 2 + (p.hr - 72) + draw.normal(0, 6)
                else:
                    raw = p.hr + (12 if febrile else 0) + (8 if p.afib and draw.chance(0.3) else 0) + draw.normal(0, 6)
            elif code == "29463-7":
                raw = weight
            elif code == "8302-2":
                raw = height + draw.normal(0, 0.4)
            elif code == "39156-5":
                raw = weight / (height / 100) ** 2
            elif code == "8310-5":
                raw = draw.uniform(37.8, 39.4) if febrile else draw.normal(36.8, 0.22)
            else:  # SpO2
                raw = min(p.spo2 + draw.normal(0, 1.0), 100)
            n += 1
            bodies.append(
                _observation(
                    f"{prefix}{n:03d}",
                    subject,
                    code,
                    "vital-signs",
                    when,
                    performer,
                    _measured(code, raw, _vital_range(code, age)),
                )
            )
        if visit.labs:
            drawn_at = visit.start + timedelta(minutes=20 + draw.below(30))
            drawn = drawn_at.isoformat()
            issued = (drawn_at + timedelta(hours=3, minutes=draw.below(240))).isoformat()
            for panel in visit.labs:
                for code, raw in _lab_values(draw, p, panel, years):
                    n += 1
                    body = _observation(
                        f"{prefix}{n:03d}",
                        subject,
                        code,
                        "laboratory",
                        drawn,
                        lab,
                        _measured(code, raw, _lab_bounds(code, p.male)),
                    )
                    body["issued"] = issued
                    bodies.append(body)
    return bodies


# --- visits and appointments -------------------------------------------------------------------------


def _working_start(day: date, draw: Draw, latest: date | None = None) -> datetime:
    """A 15-minute-aligned start in clinic hours (08:00-11:45, 13:00-16:30) on ``day``; a weekend
    day moves to the next Monday, or to the Friday before when Monday would be ``latest`` or later."""
    weekday = day.weekday()
    if weekday >= 5:
        monday = day + timedelta(days=7 - weekday)
        day = monday if latest is None or monday < latest else day - timedelta(days=weekday - 4)
    quarter = draw.below(31)  # 16 quarters in the morning, 15 in the afternoon
    hour = 8 + quarter // 4 if quarter < 16 else 13 + (quarter - 16) // 4
    return datetime.combine(day, time(hour, 15 * (quarter % 4)), tzinfo=CLINIC_TZ)


def _vitals_for(draw: Draw, age: float, first: bool) -> tuple:
    if age < 3:
        codes = ["8867-4", "29463-7", "8302-2"]
        if age >= 2:
            codes.append("39156-5")
        if draw.chance(0.6):
            codes.append("8310-5")
        if draw.chance(0.2):
            codes.append("59408-5")
        return tuple(codes)
    codes = [BP_PANEL[0], "8867-4"]
    weighed = draw.chance(0.85)
    if weighed:
        codes.append("29463-7")
    if age < 18 or first or draw.chance(0.15):
        codes.append("8302-2")
    if weighed:
        codes.append("39156-5")
    if draw.chance(0.45):
        codes.append("8310-5")
    if draw.chance(0.4):
        codes.append("59408-5")
    return tuple(codes)


def _labs_for(draw: Draw, p: Profile, age: float) -> tuple:
    if age < 18:
        return ()
    labs = []
    if p.diabetic:
        chances = {"cbc": 0.2, "bmp": 0.5, "lipid": 0.3, "a1c": 0.85}
    elif age >= 40:
        chances = {"cbc": 0.25, "bmp": 0.25, "lipid": 0.25, "a1c": 0.12 if p.prediabetic else 0.06}
    else:
        chances = {"cbc": 0.12, "bmp": 0.12, "lipid": 0.1, "a1c": 0.04}
    if p.ckd:
        chances["bmp"] = max(chances["bmp"], 0.6)
    for panel in ("cbc", "bmp", "lipid", "a1c"):
        if draw.chance(chances[panel]):
            labs.append(panel)
    return tuple(labs)


# Visits per year by age, then extra for chronic conditions. Calibrated for ~10 observations a patient.
VISIT_RATE_SCALE = 0.27
ACTIVE_SHARE = 0.6


def _visit_rate(p: Profile, age: float) -> float:
    rate = _prevalence(age, ((1, 5.0), (3, 2.0), (18, 0.6), (40, 0.5), (65, 0.8), (200, 1.3)))
    rate += 0.9 * p.diabetic + 0.4 * p.hypertensive + 0.5 * p.ckd + 0.3 * p.copd
    return rate * VISIT_RATE_SCALE


def _appointment(
    aid: str,
    status: str,
    start: datetime,
    minutes: int,
    patient_ref: dict,
    practitioner: int,
    draw: Draw,
    *,
    created: date,
    patient_status: str = "accepted",
    **extra,
) -> dict:
    traits = _practitioner_traits(practitioner)
    kind, display, description = draw.weighted(APPOINTMENT_KINDS, (0.5, 0.85, 1.0))
    return {
        "resourceType": "Appointment",
        "id": aid,
        "status": status,
        **extra,
        "serviceCategory": [{"coding": [_coding(SERVICE_CATEGORY, "17", "General Practice")]}],
        "serviceType": [{"coding": [_coding(SERVICE_TYPE, "124", "General Practice")]}],
        "appointmentType": {"coding": [_coding(V2_0276, kind, display)]},
        "description": description,
        "start": start.isoformat(),
        "end": (start + timedelta(minutes=minutes)).isoformat(),
        "minutesDuration": minutes,
        "created": created.isoformat(),
        "participant": [
            {"actor": patient_ref, "required": "required", "status": patient_status},
            {
                "actor": _reference("Practitioner", practitioner_id(practitioner), traits["display"]),
                "required": "required",
                "status": "accepted",
            },
        ],
    }


APPOINTMENT_KINDS = (
    ("ROUTINE", "Routine appointment - default if not valued", "Office visit"),
    ("FOLLOWUP", "A follow up visit from a previous appointment", "Follow-up visit"),
    ("CHECKUP", "A routine check-up, such as an annual physical", "Annual check-up"),
)


def _past_appointments(draw: Draw, p: Profile, visits: list[Visit], prefix: str) -> list[dict]:
    patient_ref = _reference("Patient", p.id)
    bodies, n = [], 0
    for visit in visits:
        if not visit.has_appointment:
            continue
        minutes = _practitioner_traits(visit.practitioner)["slot_minutes"]
        booked_on = visit.start.date() - timedelta(days=14 + draw.below(30))
        if visit.cancelled_before:
            n += 1
            earlier = _working_start(visit.start.date() - timedelta(days=3 + draw.below(12)), draw)
            by_patient = draw.chance(0.7)
            reason = (
                _coding(CANCELLATION_REASON, "pat", "Patient")
                if by_patient
                else _coding(CANCELLATION_REASON, "prov", "Provider")
            )
            bodies.append(
                _appointment(
                    f"{prefix}{n:02d}",
                    "cancelled",
                    earlier,
                    minutes,
                    patient_ref,
                    visit.practitioner,
                    draw,
                    created=booked_on,
                    patient_status="declined" if by_patient else "accepted",
                    cancelationReason={"coding": [reason]},
                )
            )
        n += 1
        bodies.append(
            _appointment(
                f"{prefix}{n:02d}",
                "fulfilled",
                visit.start,
                minutes,
                patient_ref,
                visit.practitioner,
                draw,
                created=booked_on,
            )
        )
    return bodies


# --- patients ---------------------------------------------------------------------------------------------


def _history_start(anchor: date) -> date:
    return anchor - timedelta(days=round(365.25 * HISTORY_YEARS))


def _birth_date(draw: Draw, anchor: date) -> date:
    band = draw.weighted(AGE_BANDS, _AGE_CUMULATIVE)
    span = 6 if band == 90 else 5
    days = int((band + span * draw.random()) * 365.25)
    return anchor - timedelta(days=max(days, 1))


def _marital_status(draw: Draw, age: float):
    if age < 18:
        return None
    weights = (
        (0.75, 0.95, 0.99, 1.0)
        if age < 25
        else (0.3, 0.85, 0.97, 1.0)
        if age < 45
        else (0.12, 0.74, 0.94, 1.0)
        if age < 65
        else (0.06, 0.58, 0.72, 1.0)
    )
    code, display = draw.weighted(
        (("S", "Never Married"), ("M", "Married"), ("D", "Divorced"), ("W", "Widowed")), weights
    )
    return {"coding": [_coding(MARITAL_STATUS, code, display)], "text": display}


def _coverage(draw: Draw, cid: str, p: Profile, age: float, anchor: date, member: str) -> dict | None:
    if age >= 65:
        payer = 1 if draw.chance(0.85) else 0
        insured = draw.chance(0.99)
    elif age < 19:
        payer = 1 if draw.chance(0.42) else 0
        insured = draw.chance(0.95)
    else:
        payer = 1 if draw.chance(0.12) else 0
        insured = draw.chance(0.89)
    relationship = "self" if age >= 26 else "child" if age < 18 or draw.chance(0.6) else "self"
    start_year = max(p.birth.year, anchor.year - draw.below(9))
    group = f"GRP-{10000 + draw.below(90000)}"
    if not insured:
        return None
    org_id, name, plan_value, plan_name, type_code, type_display = PAYERS[payer]
    prefix = "".join(word[0] for word in name.split()[:3]).upper()
    return {
        "resourceType": "Coverage",
        "id": cid,
        "status": "active",
        "type": {"coding": [_coding(ACT_CODE, type_code, type_display)]},
        "subscriberId": f"{prefix}{member}",
        "beneficiary": _reference("Patient", p.id),
        "relationship": {
            "coding": [_coding(SUBSCRIBER_RELATIONSHIP, relationship, "Self" if relationship == "self" else "Child")]
        },
        "period": {"start": f"{start_year}-01-01"},
        "payor": [_reference("Organization", org_id, name)],
        "class": [
            {"type": {"coding": [_coding(COVERAGE_CLASS, "group", "Group")]}, "value": group, "name": name},
            {"type": {"coding": [_coding(COVERAGE_CLASS, "plan", "Plan")]}, "value": plan_value, "name": plan_name},
        ],
    }


def _patient_body(draw: Draw, pid: str, mrn_value: str, p: Profile, anchor: date, clinic: int, j: int, names=None):
    age = p.age_at(anchor)
    group = draw.weighted(_GROUPS, _GROUP_CUMULATIVE)
    female_names, male_names, family_names, (language, language_display, speaks) = group
    given_pool = male_names if p.male else female_names
    given = [draw.pick(given_pool)]
    if draw.chance(0.45):
        second = draw.pick(given_pool)
        if second != given[0]:
            given.append(second)
    family = draw.pick(family_names) if draw.chance(0.88) else draw.pick(_ALL_FAMILY)
    address, area_codes = _address(draw)
    phone = _phone(draw, area_codes)
    has_email = age >= 16 and draw.chance(0.6)
    marital = _marital_status(draw, age)
    own_language = draw.chance(speaks)
    if names is not None:  # the demo patient's fixed names
        given, family = names
    telecom = [{"system": "phone", "value": phone, "use": "mobile" if age >= 16 else "home"}]
    if has_email:
        local = _ascii(f"{given[0]}.{family}".lower().replace(" ", "").replace("'", ""))
        telecom.append({"system": "email", "value": f"{local}{mrn_value[-3:]}@example.com", "use": "home"})
    clinic_id, clinic_name = CLINICS[clinic][:2]
    body = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [
            {
                "use": "usual",
                "type": {"coding": [_coding(V2_0203, "MR", "Medical record number")], "text": "MRN"},
                "system": MRN_SYSTEM,
                "value": mrn_value,
                "assigner": {"display": clinic_name},
            },
            {"use": "secondary", "system": SYNTHETIC_SYSTEM, "value": pid},
        ],
        "active": True,
        "name": [{"use": "official", "family": family, "given": given}],
        "telecom": telecom,
        "gender": "male" if p.male else "female",
        "birthDate": p.birth.isoformat(),
        "address": [address],
    }
    if marital:
        body["maritalStatus"] = marital
    code, display = (language, language_display) if own_language else ("en", "English")
    body["communication"] = [
        {"language": {"coding": [_coding(LANGUAGE, code, display)], "text": display}, "preferred": True}
    ]
    body["generalPractitioner"] = [_reference("Practitioner", practitioner_id(j), _practitioner_traits(j)["display"])]
    body["managingOrganization"] = _reference("Organization", clinic_id, clinic_name)
    return body


def patient_bundle(i: int, anchor: date) -> dict[str, list[dict]]:
    """Patient ``i`` and everything that hangs off it: {resource type: [bodies]}."""
    pid = patient_id(i)
    j, _rank = practitioner_of(i)
    draw = Draw(f"patient:{i}")
    male = draw.chance(0.49)
    birth = _birth_date(draw, anchor)
    p = _profile(draw, pid, male, birth, anchor)
    age = p.age_at(anchor)
    clinic = _practitioner_traits(j)["clinic"]
    patient = _patient_body(draw, pid, mrn(i), p, anchor, clinic, j)
    coverage = _coverage(draw, f"syn-cov-{i:06d}", p, age, anchor, mrn(i))

    history_start = _history_start(anchor)
    first_day = max(history_start, birth + timedelta(days=3))
    last_day = anchor - timedelta(days=1)  # results of the last visits are issued before the anchor day
    span_days = (last_day - first_day).days
    # A colleague at the same clinic (practitioners j and j - 3 share one), among those always present.
    colleague = (
        j - len(CLINICS) if j >= len(CLINICS) else j + len(CLINICS) if j + len(CLINICS) < MIN_PRACTITIONERS else j
    )
    visits = []
    if span_days > 0:
        # The rate at the middle of the window; infants' visit rate falls fast, so use their age then.
        middle_age = p.age_at(first_day + timedelta(days=span_days // 2))
        count = draw.poisson(_visit_rate(p, middle_age) * span_days / 365.25)
        if count == 0 and draw.chance(ACTIVE_SHARE):  # most of a practice's patients were seen at least once
            count = 1
        days = sorted(first_day + timedelta(days=draw.below(span_days)) for _ in range(count))
        for day in days:
            start = _working_start(day, draw, latest=last_day)
            if start.date() < first_day:  # a newborn's first days fell on a weekend just before the anchor
                continue
            visit_age = p.age_at(start.date())
            seen_by = j if draw.chance(0.9) else colleague  # now and then, whoever had time that day
            visit = Visit(start, seen_by, _vitals_for(draw, visit_age, not visits), _labs_for(draw, p, visit_age))
            visit.has_appointment = draw.chance(0.6)
            visit.cancelled_before = visit.has_appointment and draw.chance(0.12)
            visits.append(visit)
        visits.sort(key=lambda v: v.start)
    observations = _observations(draw, p, visits, f"syn-o-{i:06d}-", history_start)
    appointments = _past_appointments(draw, p, visits, f"syn-appt-{i:06d}-")
    return {
        "Patient": [patient],
        "Coverage": [coverage] if coverage else [],
        "Observation": observations,
        "Appointment": appointments,
    }


def demo_bundle(anchor: date) -> dict[str, list[dict]]:
    """The demo login's patient: Patricia ("Pat") Patient, 40s, type 2 diabetes improving on
    treatment, hypertension, high cholesterol; quarterly visits over the history window."""
    draw = Draw("patient:demo")
    birth = date(anchor.year - 47, 6, 14)
    p = _profile(draw, DEMO_PATIENT_ID, False, birth, anchor)
    p.diabetic, p.prediabetic, p.hypertensive, p.hyperlipidemic = True, False, True, True
    p.ckd, p.anemic, p.copd, p.afib = False, False, False, False
    p.bmi, p.bmi_trend, p.height_z = 31.6, -0.4, 0.2
    p.a1c, p.a1c_trend = 8.4, -0.35
    p.sbp, p.dbp, p.hr = 138.0, 86.0, 78.0
    p.tc, p.hdl, p.tg = 232.0, 44.0, 205.0
    p.creatinine, p.k, p.bun, p.hb, p.mch, p.spo2 = 0.82, 4.3, 15.0, 13.1, 29.5, 98.0
    patient = _patient_body(draw, DEMO_PATIENT_ID, DEMO_MRN, p, anchor, 0, 0, names=(["Patricia"], "Patient"))
    patient["name"].append({"use": "usual", "given": ["Pat"], "family": "Patient"})
    patient["telecom"] = [
        {"system": "phone", "value": "(217) 555-0100", "use": "mobile"},
        {"system": "email", "value": "patient@example.test", "use": "home"},
    ]
    patient["address"] = [
        {
            "use": "home",
            "type": "physical",
            "line": ["742 Maple Avenue"],
            "city": "Springfield",
            "state": "IL",
            "postalCode": "62704",
            "country": "US",
        }
    ]
    patient["communication"] = [
        {"language": {"coding": [_coding(LANGUAGE, "en", "English")], "text": "English"}, "preferred": True}
    ]
    patient["maritalStatus"] = {"coding": [_coding(MARITAL_STATUS, "M", "Married")], "text": "Married"}
    org_id, name, plan_value, plan_name, type_code, type_display = PAYERS[0]
    coverage = {
        "resourceType": "Coverage",
        "id": "demo-cov-1",
        "status": "active",
        "type": {"coding": [_coding(ACT_CODE, type_code, type_display)]},
        "subscriberId": f"BMH{DEMO_MRN}",
        "beneficiary": _reference("Patient", DEMO_PATIENT_ID),
        "relationship": {"coding": [_coding(SUBSCRIBER_RELATIONSHIP, "self", "Self")]},
        "period": {"start": f"{anchor.year - 6}-01-01"},
        "payor": [_reference("Organization", org_id, name)],
        "class": [
            {"type": {"coding": [_coding(COVERAGE_CLASS, "group", "Group")]}, "value": "GRP-20417", "name": name},
            {"type": {"coding": [_coding(COVERAGE_CLASS, "plan", "Plan")]}, "value": plan_value, "name": plan_name},
        ],
    }

    history_start = _history_start(anchor)
    visits = []
    for n in range(12):  # quarterly, the last two weeks before the anchor
        day = anchor - timedelta(days=14 + 91 * (11 - n))
        labs = ["a1c"]
        if n % 2 == 0:
            labs.append("bmp")
        if n % 4 == 0:
            labs += ["cbc", "lipid"]
        vitals = (BP_PANEL[0], "8867-4", "29463-7", *(("8302-2",) if n == 0 else ()), "39156-5", "8310-5", "59408-5")
        visit = Visit(_working_start(day, draw, latest=anchor), 0, vitals, tuple(labs))
        visit.has_appointment = True
        visit.cancelled_before = n == 7
        visits.append(visit)
    return {
        "Patient": [patient],
        "Coverage": [coverage],
        "Observation": _observations(draw, p, visits, "demo-o-", history_start),
        "Appointment": _past_appointments(draw, p, visits, "demo-appt-"),
    }


# --- schedules and slots ---------------------------------------------------------------------------------


WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")


def window(anchor: date) -> tuple[datetime, datetime]:
    """The slots' window: the ``WINDOW_DAYS`` days after the anchor day, clinic time."""
    start = datetime.combine(anchor + timedelta(days=1), time(0), tzinfo=CLINIC_TZ)
    end = datetime.combine(anchor + timedelta(days=WINDOW_DAYS + 1), time(0), tzinfo=CLINIC_TZ)
    return start, end


def _demo_slot_start(anchor: date) -> datetime:
    """The demo patient's upcoming visit: practitioner 0, 10:00 on the third working day ahead."""
    day, working = anchor, 0
    while working < 3:
        day += timedelta(days=1)
        working += day.weekday() < 5
    return datetime.combine(day, time(10, 0), tzinfo=CLINIC_TZ)


def schedule_bundle(j: int, anchor: date, patients: int) -> dict[str, list[dict]]:
    """Practitioner ``j``'s Schedule, Slots over the window after the anchor, and the booked
    Appointment of each busy slot whose patient is among the first ``patients`` (busy slots of
    patients not generated stay busy: someone outside the sandbox's records booked them)."""
    traits = _practitioner_traits(j)
    minutes = traits["slot_minutes"]
    start, end = window(anchor)
    sid = schedule_id(j)
    performer = _reference("Practitioner", practitioner_id(j), traits["display"])
    service_category = [{"coding": [_coding(SERVICE_CATEGORY, "17", "General Practice")]}]
    service_type = [{"coding": [_coding(SERVICE_TYPE, "124", "General Practice")]}]
    schedule = {
        "resourceType": "Schedule",
        "id": sid,
        "active": True,
        "serviceCategory": service_category,
        "serviceType": service_type,
        "specialty": [{"coding": [_coding(SNOMED, "419772000", "Family practice")]}],
        "actor": [performer],
        "planningHorizon": {"start": start.isoformat(), "end": end.isoformat()},
        "comment": f"{traits['display']} at {CLINICS[traits['clinic']][1]}: {minutes}-minute appointments, "
        f"weekdays 08:00-12:00 and 13:00-17:00 (America/Chicago), no afternoon hours on "
        f"{WEEKDAYS[traits['afternoon_off']]}",
    }
    demo_start = _demo_slot_start(anchor) if j == 0 else None
    slots, appointments = [], []
    schedule_ref = _reference("Schedule", sid)
    appointment_type = {"coding": [_coding(V2_0276, "ROUTINE", "Routine appointment - default if not valued")]}
    for offset in range(1, WINDOW_DAYS + 1):
        day = anchor + timedelta(days=offset)
        weekday = day.weekday()
        if weekday >= 5:
            continue
        draw = Draw(f"slots:{j}:{day.isoformat()}")
        busy_share = 0.6 - 0.035 * (offset - 1)
        hours = ((8, 12),) if weekday == traits["afternoon_off"] else ((8, 12), (13, 17))
        for first_hour, last_hour in hours:
            at = datetime.combine(day, time(first_hour), tzinfo=CLINIC_TZ)
            stop = datetime.combine(day, time(last_hour), tzinfo=CLINIC_TZ)
            while at < stop:
                until = at + timedelta(minutes=minutes)
                busy = draw.random() < busy_share
                rank = draw.below(PANEL_SIZE)  # always drawn: slots never depend on how many patients exist
                slot_id = f"syn-slot-{j:05d}-{at:%Y%m%d%H%M}"
                booked_by = None
                if at == demo_start:
                    busy, booked_by = True, DEMO_PATIENT_ID
                elif busy and panel_patient(j, rank) < patients:
                    booked_by = patient_id(panel_patient(j, rank))
                slots.append(
                    {
                        "resourceType": "Slot",
                        "id": slot_id,
                        "serviceCategory": service_category,
                        "serviceType": service_type,
                        "appointmentType": appointment_type,
                        "schedule": schedule_ref,
                        "status": "busy" if busy else "free",
                        "start": at.isoformat(),
                        "end": until.isoformat(),
                    }
                )
                if booked_by:
                    appointments.append(
                        _appointment(
                            f"syn-appt-s{j:05d}-{at:%Y%m%d%H%M}",
                            "booked",
                            at,
                            minutes,
                            _reference("Patient", booked_by),
                            j,
                            Draw(slot_id),
                            created=anchor - timedelta(days=Draw(f"created:{slot_id}").below(30)),
                            slot=[_reference("Slot", slot_id)],
                        )
                    )
                at = until
    return {"Schedule": [schedule], "Slot": slots, "Appointment": appointments}
