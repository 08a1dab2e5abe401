"""The Observation search by patient sorted by date is an index range scan on ``obs_patient_date``,
page N the same plan as page 1 (keyset, never OFFSET), and ``total`` a COUNT on the same index
prefix. Checked on PostgreSQL's plans of the queries the view actually ran."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.api.fhir import helpers as h
from tests.factories import AppFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def _plan(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a test table is tiny; ask what the index can do
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def _observation_queries(client, url, raw):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, **h.bearer(raw))
    assert response.status_code == 200, response.content
    queries = [q["sql"] for q in captured.captured_queries if 'FROM "api_observation"' in q["sql"]]
    page = next(q for q in queries if "ORDER BY" in q)
    count = next(q for q in queries if "COUNT(" in q)
    return response.json(), page, count


def test_patient_date_search_uses_obs_patient_date_on_every_page(client):
    app = AppFactory()
    for n in range(30):
        h.observation(f"ob{n:02d}", "p1", effective=h.T0 + timedelta(days=n))
        h.observation(f"xx{n:02d}", "p2", effective=h.T0 + timedelta(days=n))
    h.consent(app, "p1")
    raw = h.patient_token(app, "p1")
    body, page1, count = _observation_queries(client, "/fhir/r4/Observation?patient=p1&_sort=-date&_count=10", raw)
    assert "OFFSET" not in page1
    plan1 = _plan(page1)
    assert "obs_patient_date" in plan1, plan1
    assert "Sort" not in plan1.replace("Sort Key", ""), plan1  # the index gives the order
    assert "obs_patient" in _plan(count)

    url = next(link["url"] for link in body["link"] if link["relation"] == "next").removeprefix("http://testserver")
    body, page2, _ = _observation_queries(client, url, raw)
    assert "obs_patient_date" in _plan(page2)
    url = next(link["url"] for link in body["link"] if link["relation"] == "next").removeprefix("http://testserver")
    _, page3, _ = _observation_queries(client, url, raw)
    assert "OFFSET" not in page3
    plan3 = _plan(page3)
    assert "obs_patient_date" in plan3, plan3
    assert "Index Cond" in plan3 and "effective" in plan3.split("Index Cond")[1].split("\n")[0], plan3
    assert "Sort" not in plan3.replace("Sort Key", ""), plan3
