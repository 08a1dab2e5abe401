"""Search parameters, ``_count`` and the keyset cursor of FHIR searches.

Values are parsed here into what a queryset filter needs; a malformed value is refused with
``invalid_search`` (400 ``validation_error``, FHIR issue code ``invalid``, naming the parameter).

Paging is keyset, never OFFSET: the cursor carries the sort key and id of the last row of the page
(signed with ``django.core.signing``, so a client can neither forge nor edit one), and the next page
is "rows after that key" in the same order. A row inserted before the cursor position therefore never
shifts a later page, and page N costs what page 1 costs: an index range scan from the key.
"""

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.core import signing
from django.db.models import Q

from api.problems import Problem

DEFAULT_COUNT = 20
MAX_COUNT = 100
CURSOR_SALT = "api.fhir.search.cursor"
# How a FHIR search value is compared (``ge2024-01-01``); ``sa``/``eb`` read as ``gt``/``lt``.
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb")
_DATE = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def invalid_search(field: str, message: str) -> Problem:
    """A malformed search parameter: 400 ``validation_error`` naming it (``expression`` in FHIR)."""
    return Problem(
        "validation_error",
        f"1 field is invalid: {field}. {message}",
        errors=[{"field": field, "pointer": f"#/{field}", "message": message, "code": "invalid"}],
    )


def parse_count(raw: str | None) -> int:
    """``_count``: 20 when absent, at most 100 (a larger value is served as 100), 0 for the total only."""
    if raw is None or raw == "":
        return DEFAULT_COUNT
    if not raw.isdigit():
        raise invalid_search("_count", f"_count is a whole number from 0 to {MAX_COUNT}.")
    return min(int(raw), MAX_COUNT)


# --- values --------------------------------------------------------------------------------------------


def split_or(raw: str) -> list[str]:
    """A comma-separated list of alternatives (FHIR's OR), with ``\\,`` an escaped comma."""
    parts = re.split(r"(?<!\\),", raw)
    return [p.replace("\\,", ",").strip() for p in parts if p.strip()]


def token(raw: str) -> tuple[str | None, str]:
    """``system|code``, ``|code`` (no system) or ``code`` (any system) -> (system or None, code)."""
    if "|" in raw:
        system, _, code = raw.partition("|")
        return system, code
    return None, raw


def reference_id(raw: str, resource_type: str, field: str) -> str | None:
    """``Patient/123``, ``123`` or an absolute ``.../Patient/123`` -> ``123``; None when the reference
    names another resource type (it matches nothing)."""
    value = raw.strip()
    if not value or value.endswith("/"):
        raise invalid_search(field, f"{field} is a reference: {resource_type}/<id> or <id>.")
    if "/" in value:
        kind, _, rid = value.rpartition("/")
        kind = kind.rpartition("/")[2]
        if kind != resource_type:
            return None
        value = rid
    if not re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", value):
        raise invalid_search(field, f"{field} is a reference: {resource_type}/<id> or <id>.")
    return value


@dataclass(frozen=True)
class DateRange:
    """A FHIR date or dateTime search value: the prefix and the half-open interval it stands for."""

    prefix: str
    start: datetime
    end: datetime

    def q(self, column: str, *, as_date: bool = False) -> Q:
        start, end = (self.start.date(), self.end.date()) if as_date else (self.start, self.end)
        if as_date and self.end.timetz() != time(0, tzinfo=UTC):  # a dateTime inside a day
            end = end + timedelta(days=1)
        inside = Q(**{f"{column}__gte": start, f"{column}__lt": end})
        return {
            "eq": inside,
            "ne": ~inside,
            "gt": Q(**{f"{column}__gte": end}),
            "sa": Q(**{f"{column}__gte": end}),
            "lt": Q(**{f"{column}__lt": start}),
            "eb": Q(**{f"{column}__lt": start}),
            "ge": Q(**{f"{column}__gte": start}),
            "le": Q(**{f"{column}__lt": end}),
        }[self.prefix]


def date_range(raw: str, field: str) -> DateRange:
    """``[prefix]YYYY[-MM[-DD[Thh:mm[:ss[.fff]][Z|±hh:mm]]]]``; a time without a zone is UTC."""
    value = raw.strip().replace(" ", "+")  # an unencoded + in an offset arrives as a space
    prefix = value[:2] if value[:2] in PREFIXES else "eq"
    if value[:2] in PREFIXES:
        value = value[2:]
    match = _DATE.match(value)
    message = (
        f"{field} is a FHIR date, optionally with a prefix (eq, ne, gt, lt, ge, le): "
        "2024, 2024-05, 2024-05-17 or 2024-05-17T09:30:00Z."
    )
    if not match:
        raise invalid_search(field, message)
    parts = match.groupdict()
    try:
        year = int(parts["year"])
        if parts["month"] is None:
            start = datetime(year, 1, 1, tzinfo=UTC)
            end = datetime(year + 1, 1, 1, tzinfo=UTC)
        elif parts["day"] is None:
            month = int(parts["month"])
            start = datetime(year, month, 1, tzinfo=UTC)
            end = start + timedelta(days=calendar.monthrange(year, month)[1])
        elif parts["hour"] is None:
            start = datetime.combine(date(year, int(parts["month"]), int(parts["day"])), time(0), tzinfo=UTC)
            end = start + timedelta(days=1)
        else:
            fraction = (parts["fraction"] or "").ljust(6, "0")[:6]
            start = datetime.fromisoformat(
                f"{year:04d}-{parts['month']}-{parts['day']}T{parts['hour']}:{parts['minute']}:"
                f"{parts['second'] or '00'}.{fraction}{(parts['tz'] or 'Z').replace('Z', '+00:00')}"
            ).astimezone(UTC)
            if parts["second"] is None:
                end = start + timedelta(minutes=1)
            elif parts["fraction"] is None:
                end = start + timedelta(seconds=1)
            else:
                end = start + timedelta(microseconds=1)
    except ValueError:
        raise invalid_search(field, message) from None
    return DateRange(prefix, start, end)


# --- the cursor ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sort:
    """The order of a search: one column (or none: by id alone) and a direction; ``id`` breaks ties."""

    name: str  # as the client wrote it in _sort, "" for the default order
    column: str | None
    descending: bool = False

    def order_by(self) -> list[str]:
        sign = "-" if self.descending else ""
        return [f"{sign}{self.column}", f"{sign}id"] if self.column else [f"{sign}id"]

    def key_of(self, row) -> str | None:
        if not self.column:
            return None
        value = getattr(row, self.column)
        return value.isoformat() if isinstance(value, datetime | date) else value

    def after(self, key, last_id: str) -> Q:
        """Rows after (key, last_id) in this order, written so an index on (..., column, id) gives a
        range scan: ``column >= key`` (an index condition) and then the tie-break on id."""
        if not self.column:
            return Q(id__lt=last_id) if self.descending else Q(id__gt=last_id)
        op, strict = ("lte", "lt") if self.descending else ("gte", "gt")
        return Q(**{f"{self.column}__{op}": key}) & (
            Q(**{f"{self.column}__{strict}": key}) | Q(**{f"id__{strict}": last_id})
        )


def encode_cursor(resource_type: str, sort: Sort, row) -> str:
    return signing.dumps({"t": resource_type, "s": sort.name, "k": sort.key_of(row), "i": row.id}, salt=CURSOR_SALT)


def decode_cursor(raw: str, resource_type: str, sort: Sort) -> tuple:
    """The (key, id) a cursor resumes after; refused unless this server signed it for this search."""
    try:
        data = signing.loads(raw, salt=CURSOR_SALT)
    except signing.BadSignature:
        data = None
    if not isinstance(data, dict) or data.get("t") != resource_type or data.get("s") != sort.name:
        raise invalid_search("_cursor", "The cursor is not one this server gave for this search; follow the next link.")
    key = data.get("k")
    if key is not None and sort.column:
        try:
            key = datetime.fromisoformat(key)
        except (TypeError, ValueError):
            raise invalid_search("_cursor", "The cursor is damaged; follow the Bundle's next link.") from None
    return key, str(data.get("i", ""))
