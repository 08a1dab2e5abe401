"""The access audit as CSV, streamed row by row (an export can hold millions of rows): a header
row, then one row per event, times in ISO 8601 UTC.

Cells a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, carriage return at the
start) get a leading apostrophe: a caller's User-Agent is its own words, and opening an export must
never execute them.
"""

import csv
from datetime import UTC, datetime

from django.http import StreamingHttpResponse
from django.utils.cache import add_never_cache_headers

# Everything recorded: what platform admins export.
ADMIN_COLUMNS = (
    "id",
    "occurred_at",
    "outcome",
    "action",
    "resource_type",
    "resource_id",
    "patient_id",
    "refusal_code",
    "consent_grant_id",
    "environment",
    "app_id",
    "client_id",
    "organization_id",
    "user_id",
    "token_id",
    "ip",
    "user_agent",
    "correlation_id",
)
# What a partner exports of its own app: everything about each access except the platform's
# internal keys (its organization, app and account ids; the client id names the app).
PARTNER_COLUMNS = tuple(c for c in ADMIN_COLUMNS if c not in {"app_id", "organization_id", "user_id"})

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


class _Echo:
    """A file whose ``write`` hands the line back, so ``csv.writer`` can feed a generator."""

    def write(self, value):
        return value


def csv_lines(events, columns=ADMIN_COLUMNS, *, chunk_size: int = 2000):
    writer = csv.writer(_Echo())
    yield writer.writerow(columns)
    for row in events.values_list(*columns).iterator(chunk_size=chunk_size):
        yield writer.writerow([cell(value) for value in row])


def csv_response(events, *, filename: str, columns=ADMIN_COLUMNS) -> StreamingHttpResponse:
    response = StreamingHttpResponse(csv_lines(events, columns), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    add_never_cache_headers(response)  # patient ids: never in a shared cache
    return response
