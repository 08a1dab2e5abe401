"""Full-text search of the docs: every rendered page, and every error code's page, split into
sections (a heading and the text under it) and kept as ``DocSection`` rows.

Indexing (``doc_sections_rebuild``) renders each page as a visitor sees it, generated tables included,
and rewrites a page's rows only when the hash of that HTML changed; rows of pages that are gone are
deleted. It runs from ``manage.py index_docs`` (the seed calls it, so a fresh sandbox can search) and,
lazily, before a search whenever the docs files changed since this process last looked (one stat per
file, as ``portal.docs`` decides whether to re-render) or ``RECHECK_SECONDS`` have passed, because the
generated tables follow tiers and catalogues that change without any file changing.

Searching (``search``) is PostgreSQL's full-text search on PostgreSQL: headings and page titles weigh
more than body text (weights A and B), the words are read as ``websearch_to_tsquery`` reads a search
box (never a syntax error), and ``ts_headline`` marks the words in the snippet. On SQLite it is a plain
fallback: every word must appear (case-insensitively) in the title, heading or text, and sections with
the words in their heading come first. Either way a query is at most ``MAX_QUERY_LENGTH`` characters and
a search shows at most ``MAX_RESULTS`` sections.
"""

import hashlib
import logging
import re
import threading
import time
import unicodedata
from dataclasses import dataclass
from html.parser import HTMLParser

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from portal import docs
from portal.models import DocSection

logger = logging.getLogger(__name__)

MAX_QUERY_LENGTH = 200
MAX_RESULTS = 20
RECHECK_SECONDS = 300
SNIPPET_CHARS = 220  # the fallback's snippet: about as long as ts_headline's MaxWords=35
ERROR_SLUG_PREFIX = "errors/"  # an error code's page is /docs/errors/<code>/: its "slug" is errors/<code>
CONFIG = "english"

# Sentinels that no docs text contains: ts_headline marks the words with them, and only after the
# snippet is escaped do they become <mark>, so text from the docs can never become markup here.
_START, _STOP = "\x02", "\x03"


# --- Splitting a rendered page into sections ----------------------------------------------------


@dataclass(frozen=True)
class Section:
    anchor: str
    heading: str
    text: str


# Sections start at h2 and h3 headings that carry an id (the TOC's h2s, and the h3s of generated
# blocks such as each event type); h4 and below stay in their section.
_SPLIT_AT = {"h2", "h3"}
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
# Text inside these runs on with its neighbours; any other tag separates words.
_INLINE = {"a", "abbr", "b", "code", "del", "em", "i", "ins", "kbd", "mark", "span", "strong", "sub", "sup"}
_SPACE_RE = re.compile(r"\s+")


class _Splitter(HTMLParser):
    def __init__(self, top_heading: str):
        super().__init__(convert_charrefs=True)
        self.sections: list[list] = [["", top_heading, []]]  # anchor, heading, text parts
        self.heading: list[str] | None = None  # the text of a splitting heading being read
        self.skip_depth = 0  # inside a permalink (the "¶" the TOC adds to each heading)
        self.in_h1 = False  # the page's h1 repeats its title, which every section is indexed with

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if self.skip_depth:
            self.skip_depth += tag == "a"
            return
        if tag == "a" and "headerlink" in (attributes.get("class") or "").split():
            self.skip_depth = 1
            return
        if tag in _SPLIT_AT and attributes.get("id"):
            self.sections.append([attributes["id"], "", []])
            self.heading = []
            return
        if tag == "h1":
            self.in_h1 = True
        if tag not in _INLINE:
            self._write(" ")

    def handle_endtag(self, tag):
        if self.skip_depth:
            self.skip_depth -= tag == "a"
            return
        if tag in _SPLIT_AT and self.heading is not None:
            self.sections[-1][1] = _clean("".join(self.heading))
            self.heading = None
            return
        if tag == "h1":
            self.in_h1 = False
        if tag not in _INLINE:
            self._write(" ")

    def handle_data(self, data):
        if not self.skip_depth and not self.in_h1:
            self._write(data)

    def _write(self, text):
        (self.heading if self.heading is not None else self.sections[-1][2]).append(text)


def _clean(text: str) -> str:
    return _SPACE_RE.sub(" ", text).strip()


def split_sections(body: str, *, title: str) -> list[Section]:
    """The page's sections in order: its top (anchor ``""``, headed by the page title, holding the text
    before the first heading but not the h1), then one per h2 or h3 with an id."""
    parser = _Splitter(title)
    parser.feed(str(body))
    parser.close()
    return [Section(anchor, heading or title, _clean("".join(parts))) for anchor, heading, parts in parser.sections]


# --- What the index holds --------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexedPage:
    slug: str
    title: str
    sections: tuple[Section, ...]
    source_hash: str


def _hash(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _docs_page(slug: str) -> IndexedPage | None:
    page = docs.page(slug)
    if page is None:
        return None
    body = str(page.html())
    return IndexedPage(
        slug=slug,
        title=page.title,
        sections=tuple(split_sections(body, title=page.title)),
        source_hash=_hash(page.title, body),
    )


def _error_pages() -> list[IndexedPage]:
    """An error code's page is a template over its catalogue entry, so its sections are built from the
    entry with the same headings and anchors as ``templates/docs/error.html``. Developers paste codes
    into the search box: the code is in the title and in the top section's text."""
    from api import errors

    renamed: dict[str, list[str]] = {}
    for old, new in docs.RENAMED_ERROR_CODES.items():
        renamed.setdefault(new, []).append(old)
    pages = []
    for error in errors.ERRORS.values():
        formerly = renamed.get(error.code, [])
        top = (
            f"{error.code} HTTP status {error.status}. Refused by the {error.layer} layer. "
            f"On /fhir/ an OperationOutcome with issue code {error.fhir_issue}."
            + (f" Formerly {', '.join(formerly)}." if formerly else "")
        )
        sections = (
            Section("", f"{error.code}: {error.title}", top),
            Section("what-happened", "What happened", error.explanation),
            Section("what-to-do", "What to do", error.fix),
        )
        title = f"Error {error.code}"
        pages.append(
            IndexedPage(
                slug=f"{ERROR_SLUG_PREFIX}{error.code}",
                title=title,
                sections=sections,
                source_hash=_hash(title, *(f"{s.anchor}\0{s.heading}\0{s.text}" for s in sections)),
            )
        )
    return pages


def _all_pages() -> list[IndexedPage]:
    pages = []
    for entry in docs.entries():
        try:
            page = _docs_page(entry.slug)
        except Exception:  # one broken page keeps its old rows; the others are still indexed
            logger.warning("docs page %s not indexed", entry.slug, exc_info=True)
            continue
        if page is not None:
            pages.append(page)
    return pages + _error_pages()


# --- Indexing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexResult:
    pages: int
    rebuilt: list[str]
    deleted: list[str]


def doc_sections_rebuild(*, force: bool = False) -> IndexResult:
    """Bring the ``DocSection`` rows in line with the docs as they render now: a page whose hash
    changed (or every page, with ``force``) gets its rows replaced; pages that are gone lose theirs."""
    pages = _all_pages()
    indexed = dict(DocSection.objects.filter(position=0).values_list("slug", "source_hash"))
    rebuilt = []
    for page in pages:
        if not force and indexed.get(page.slug) == page.source_hash:
            continue
        try:
            with transaction.atomic():
                DocSection.objects.filter(slug=page.slug).delete()
                DocSection.objects.bulk_create(
                    DocSection(
                        slug=page.slug,
                        page_title=page.title[:200],
                        position=position,
                        anchor=section.anchor[:200],
                        heading=section.heading[:300],
                        text=section.text,
                        source_hash=page.source_hash,
                    )
                    for position, section in enumerate(page.sections)
                )
        except IntegrityError:  # another process rebuilt this page at the same moment: theirs stands
            logger.info("docs page %s was being indexed by another process", page.slug)
            continue
        rebuilt.append(page.slug)
    # Every slug in the table, not only those with a row at position 0: a half-written page from an
    # older version must go too.
    present = {page.slug for page in pages}
    gone = sorted(set(DocSection.objects.values_list("slug", flat=True).distinct()) - present)
    # A page that failed to render is kept (it still exists): only missing files and codes go.
    existing_files = {entry.slug for entry in docs.entries()}
    gone = [slug for slug in gone if slug not in existing_files]
    if gone:
        DocSection.objects.filter(slug__in=gone).delete()
    return IndexResult(pages=len(pages), rebuilt=rebuilt, deleted=gone)


# What this process last indexed: the docs files' fingerprint and when. A search re-checks only when
# the files changed or RECHECK_SECONDS passed; the check itself renders from portal.docs's cache.
_memo: dict = {"fingerprint": None, "at": 0.0}
_memo_lock = threading.Lock()


def fingerprint() -> tuple:
    """Which docs files exist and their versions (as ``portal.docs`` tells them apart): a stat each."""
    directory = docs.docs_dir()
    files = []
    for path in sorted(directory.glob("*.md")):
        try:
            stat = path.stat()
        except OSError:
            continue
        files.append((path.name, stat.st_mtime_ns, stat.st_size))
    return (str(directory), tuple(files))


def ensure_index() -> None:
    """Re-index if the docs changed since this process last did; never raises (a stale index is
    better than a failed search)."""
    current = fingerprint()
    if _memo["fingerprint"] == current and time.monotonic() - _memo["at"] < RECHECK_SECONDS:
        return
    with _memo_lock:
        if _memo["fingerprint"] == current and time.monotonic() - _memo["at"] < RECHECK_SECONDS:
            return
        try:
            doc_sections_rebuild()
        except Exception:
            logger.warning("docs search index not refreshed", exc_info=True)
            return
        _memo.update(fingerprint=current, at=time.monotonic())


def forget() -> None:
    """Make the next search check the index again (tests: a rolled-back database lost the rows)."""
    _memo.update(fingerprint=None, at=0.0)


# --- Searching -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    slug: str
    page_title: str
    heading: str
    anchor: str
    snippet: SafeString

    @property
    def url(self) -> str:
        return f"/docs/{self.slug}/" + (f"#{self.anchor}" if self.anchor else "")

    @property
    def is_top(self) -> bool:
        return not self.anchor


def clean_query(raw: str | None) -> str:
    """What is searched for: control characters (PostgreSQL refuses a NUL) and surplus whitespace
    removed, at most ``MAX_QUERY_LENGTH`` characters."""
    text = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in (raw or ""))
    return _clean(text)[:MAX_QUERY_LENGTH].strip()


def search(raw_query: str | None, *, limit: int = MAX_RESULTS) -> list[Result]:
    """The sections that match, best first; nothing for an empty query."""
    query = clean_query(raw_query)
    if not query:
        return []
    ensure_index()
    if settings.DATABASE_IS_POSTGRES:
        return _search_postgres(query, limit)
    return _search_fallback(query, limit)


def _marked(snippet: str) -> SafeString:
    """``snippet`` escaped, then its sentinel-marked words wrapped in <mark>."""
    escaped = escape(snippet)
    return mark_safe(escaped.replace(_START, "<mark>").replace(_STOP, "</mark>"))  # noqa: S308 -- escaped first


def _words_of_code(column: str):
    """``column`` with the dots, slashes, underscores and colons of code read as spaces: PostgreSQL's
    parser takes ``time.sleep`` or ``/oauth/token/`` for one word (a host, a path), so without this a
    search for ``sleep`` or ``token`` would not find them in a code sample."""
    from django.db.models import F, Func, TextField, Value

    return Func(
        F(column), Value(r"[._/:]+"), Value(" "), Value("g"), function="regexp_replace", output_field=TextField()
    )


def _search_postgres(query: str, limit: int) -> list[Result]:
    # The search classes are expressions only: django.contrib.postgres need not be installed for them.
    from django.contrib.postgres.search import SearchHeadline, SearchQuery, SearchRank, SearchVector

    vector = (
        SearchVector("page_title", weight="A", config=CONFIG)
        + SearchVector("heading", _words_of_code("heading"), weight="A", config=CONFIG)
        + SearchVector("text", _words_of_code("text"), weight="B", config=CONFIG)
    )
    ts_query = SearchQuery(query, search_type="websearch", config=CONFIG)
    rows = (
        DocSection.objects.annotate(document=vector)
        .filter(document=ts_query)
        .annotate(
            rank=SearchRank(vector, ts_query),
            headline=SearchHeadline(
                "text",
                ts_query,
                config=CONFIG,
                start_sel=_START,
                stop_sel=_STOP,
                max_words=35,
                min_words=15,
                max_fragments=2,
                fragment_delimiter=" … ",
            ),
        )
        .order_by("-rank", "slug", "position")
        .values("slug", "page_title", "heading", "anchor", "text", "headline")[:limit]
    )
    return [
        Result(
            slug=row["slug"],
            page_title=row["page_title"],
            heading=row["heading"],
            anchor=row["anchor"],
            snippet=_marked(row["headline"] if row["text"] else ""),
        )
        for row in rows
    ]


# websearch syntax the fallback reads as plain words: quotes, a leading minus, "or".
_WORD_RE = re.compile(r"[\w][\w.\-/]*[\w]|[\w]", re.UNICODE)


def query_words(query: str) -> list[str]:
    """The distinct words of ``query``, lower-cased, in order; punctuation is not a word."""
    words = []
    for word in _WORD_RE.findall(query.lower()):
        if word != "or" and word not in words:
            words.append(word)
    return words


def _search_fallback(query: str, limit: int) -> list[Result]:
    words = query_words(query)[:20]
    if not words:
        return []
    condition = Q()
    for word in words:
        condition &= Q(page_title__icontains=word) | Q(heading__icontains=word) | Q(text__icontains=word)
    rows = list(
        DocSection.objects.filter(condition).values("slug", "page_title", "heading", "anchor", "text", "position")
    )

    def rank(row) -> tuple:
        heading = row["heading"].lower()
        text = row["text"].lower()
        in_heading = sum(word in heading for word in words)
        in_text = sum(text.count(word) for word in words)
        # Headings first (all the words in the heading before some of them), then how often the
        # words occur in the text, then reading order.
        return (-in_heading, -in_text, row["slug"], row["position"])

    rows.sort(key=rank)
    return [
        Result(
            slug=row["slug"],
            page_title=row["page_title"],
            heading=row["heading"],
            anchor=row["anchor"],
            snippet=_marked(_snippet(row["text"], words)),
        )
        for row in rows[:limit]
    ]


def _snippet(text: str, words: list[str]) -> str:
    """About ``SNIPPET_CHARS`` of ``text`` around the first word found, the words marked by sentinels."""
    if not text:
        return ""
    lowered = text.lower()
    found = [i for i in (lowered.find(word) for word in words) if i >= 0]
    first = min(found) if found else 0
    start = max(0, first - SNIPPET_CHARS // 3)
    if start:  # start at a word boundary
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < first else start
    end = min(len(text), start + SNIPPET_CHARS)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > first else end
    window = text[start:end]
    pattern = re.compile("|".join(re.escape(word) for word in sorted(words, key=len, reverse=True)), re.IGNORECASE)
    window = pattern.sub(lambda m: f"{_START}{m[0]}{_STOP}", window)
    return ("… " if start else "") + window + (" …" if end < len(text) else "")
