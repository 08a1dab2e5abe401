"""The docs portal's pages: Markdown files in ``settings.DOCS_DIR``, rendered to sanitized HTML.

A page is ``<slug>.md`` with a front matter of ``key: value`` lines between ``---`` fences (``title``,
``summary``). Rendering happens once per file version and process; what a page says about live
configuration does not come from the file at all: a line ``<!-- generated: <name> -->`` is replaced,
on every request, by the HTML that ``BLOCKS[name]`` builds from the data the platform itself runs on
(the rate-limit tables come from the same tiers and the same ``effective_quotas`` as the limiter).
"""

import html
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import markdown
import nh3
from django.conf import settings
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import JsonLexer

from api import ratelimit
from api.workflows.event_feed_api import event_type_anchor, example_envelope
from partners import events, token_limits
from partners.models import Tier
from partners.tiers import ENDPOINT_GROUPS, QUOTA_WINDOWS, effective_quotas
from portal.templatetags.portal_tags import duration

SLUG_RE = re.compile(r"[a-z0-9-]+")
PYGMENTS_STYLE = "default"

# The reading order of the index and the sidebar. A page not listed still appears, under "More",
# so adding a file is enough to publish it.
SECTIONS = (
    (
        "Start here",
        (
            "quickstart",
            "getting-started",
            "sandbox",
            "authentication",
            "authorization-layers",
            "scopes",
            "consent",
            "tiers",
            "certification",
        ),
    ),
    (
        "APIs",
        (
            "fhir-api",
            "workflow-apis",
            "visits",
            "lab-result-shares",
            "eligibility-checks",
            "events",
            "webhooks",
            "migrating-to-v2",
        ),
    ),
    (
        "Operating your app",
        (
            "errors",
            "rate-limits",
            "adaptive-limits",
            "token-endpoint-limits",
            "idempotency",
            "usage",
            "versioning",
            "deprecation-policy",
            "access-audit",
            "status-and-metrics",
            "support",
        ),
    ),
    # The changelog is records an admin publishes (portal.changelog), not a Markdown page: a link.
    ("What changed", ("changelog",)),
)
OTHER_SECTION = "More"


class BrokenPage(ValueError):
    """A page asks for a generated block nobody registered, or hides a marker where it cannot be
    replaced: an error, so that the page is never served with its numbers silently missing."""


@dataclass(frozen=True)
class Entry:
    """What the index and the sidebar show of a page: read from its front matter, never rendered, so
    one broken page cannot take the others' navigation down with it."""

    slug: str
    title: str
    summary: str

    @property
    def url(self) -> str:
        return f"/docs/{self.slug}/"


@dataclass(frozen=True)
class NavLink(Entry):
    """A portal page that is not a Markdown file, listed in the index and the sidebar like one."""

    path: str = ""

    @property
    def url(self) -> str:
        return self.path


# Slugs in SECTIONS that name such a page rather than a file.
NAV_LINKS = {
    "changelog": NavLink(
        slug="changelog",
        title="Changelog",
        summary="What changed in the platform's APIs, newest first; filter it, or follow it as an Atom feed.",
        path="/changelog/",
    ),
}


@dataclass(frozen=True)
class Heading:
    id: str
    text: str


@dataclass(frozen=True)
class Page(Entry):
    meta: dict
    body: str  # sanitized HTML, generated blocks still as placeholders
    headings: tuple[Heading, ...] = ()  # the h2s, for "on this page"
    blocks: tuple[str, ...] = ()  # the generated blocks it shows

    def html(self) -> SafeString:
        """The body with every generated block built now, from the configuration as it is now."""
        body = _PLACEHOLDER_RE.sub(lambda m: str(BLOCKS[m[1]]()), self.body)
        return mark_safe(body)  # noqa: S308 -- sanitized when rendered; each block escapes its own values


@dataclass(frozen=True)
class Section:
    title: str
    pages: tuple[Entry, ...]


# --- Finding pages ----------------------------------------------------------------------------


def docs_dir() -> Path:
    return Path(settings.DOCS_DIR)


def page(slug: str) -> Page | None:
    """The page called ``slug``, or None; a slug is a file name and nothing else (no dots, no slashes)."""
    path = _path(slug)
    return _cached(_pages, path, lambda text: render(text, slug=slug)) if path else None


def entries() -> list[Entry]:
    found = []
    for path in sorted(docs_dir().glob("*.md")):
        if _path(path.stem) == path:
            found.append(_cached(_entries, path, lambda text, slug=path.stem: entry(text, slug=slug)))
    return found


def sections() -> list[Section]:
    """Every page once, in reading order, grouped as the index and the sidebar show them."""
    by_slug = {e.slug: e for e in entries()}
    result = []
    for title, slugs in SECTIONS:
        listed = tuple(
            NAV_LINKS.get(slug) or by_slug.pop(slug) for slug in slugs if slug in NAV_LINKS or slug in by_slug
        )
        if listed:
            result.append(Section(title, listed))
    if by_slug:
        result.append(Section(OTHER_SECTION, tuple(sorted(by_slug.values(), key=lambda e: e.title.lower()))))
    return result


def _path(slug: str) -> Path | None:
    if not SLUG_RE.fullmatch(slug or ""):
        return None
    path = docs_dir() / f"{slug}.md"
    return path if path.is_file() else None


# Rendering is the costly part; the stat that decides whether to redo it is not. Keyed by path so
# that a different DOCS_DIR (tests) never sees another directory's pages.
_pages: dict[Path, tuple[tuple[int, int], Page]] = {}
_entries: dict[Path, tuple[tuple[int, int], Entry]] = {}
_cache_lock = threading.Lock()


def _cached(cache: dict, path: Path, build):
    stat = path.stat()
    version = (stat.st_mtime_ns, stat.st_size)
    hit = cache.get(path)
    if hit and hit[0] == version:
        return hit[1]
    built = build(path.read_text(encoding="utf-8"))
    with _cache_lock:
        cache[path] = (version, built)
    return built


def forget() -> None:
    _pages.clear()
    _entries.clear()


# --- Rendering ----------------------------------------------------------------------------------

_H1_RE = re.compile(r"^# +(.+?)#*$", re.M)
_FRONT_MATTER_RE = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.S)
_MARKER_RE = re.compile(r"^<!--\s*generated:\s*([a-z0-9-]+)\s*-->$", re.M)
_ANY_MARKER_RE = re.compile(r"<!--\s*generated:")
# What the marker becomes before sanitizing: an element the sanitizer keeps as it is, so it can be
# found again afterwards. Inside code the marker is escaped text, so it is never replaced there.
_PLACEHOLDER = '<div data-generated="{}"></div>'
_PLACEHOLDER_RE = re.compile(r'<div data-generated="([a-z0-9-]+)"></div>')
_PAGE_LINK_RE = re.compile(r"\A(?:\./)?([a-z0-9-]+)\.md(#[^\s]*)?\Z")

ALLOWED_TAGS = {
    *("h1", "h2", "h3", "h4", "h5", "h6", "p", "br", "hr", "blockquote", "div", "span"),
    *("ul", "ol", "li", "dl", "dt", "dd"),
    *("a", "em", "strong", "b", "i", "code", "kbd", "pre", "sub", "sup", "del", "ins", "mark", "abbr"),
    *("table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "colgroup", "col"),
    *("details", "summary"),
}
# Ids only where the table of contents puts them: the permalinks need them, nothing else does.
ALLOWED_ATTRIBUTES = {
    "*": {"class"},
    **{f"h{level}": {"id"} for level in range(1, 7)},
    "a": {"href", "title"},
    "abbr": {"title"},
    "div": {"data-generated"},
    "details": {"open"},
    "ol": {"start"},
    "th": {"align", "scope", "colspan", "rowspan"},
    "td": {"align", "colspan", "rowspan"},
}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}


def _converter(*, toc: bool = True) -> markdown.Markdown:
    return markdown.Markdown(
        extensions=[
            *(["toc"] if toc else []),
            "tables",
            "admonition",
            "pymdownx.details",
            "pymdownx.superfences",
            "pymdownx.highlight",
            _PageLinks(),
        ],
        extension_configs={
            **({"toc": {"permalink": "¶", "permalink_title": "Link to this section"}} if toc else {}),
            # align="..." rather than style="...": the sanitizer allows no inline style at all.
            "tables": {"use_align_attribute": True},
            "pymdownx.highlight": {"use_pygments": True, "guess_lang": False, "css_class": "highlight"},
        },
        output_format="html",
    )


def sanitize(converted: str) -> str:
    return nh3.clean(
        converted,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel=None,
        strip_comments=True,
    )


def render_markdown(text: str) -> SafeString:
    """Markdown an admin wrote (a changelog entry's body, its migration notes) as sanitized HTML: the
    pages' extensions and sanitizer, links to ``tiers.md`` rewritten, but no heading ids (several
    entries share one page, and their slugs are its anchors) and no generated blocks (a marker is a
    comment, and the sanitizer drops it)."""
    return mark_safe(sanitize(_converter(toc=False).convert(text or "")))  # noqa: S308 -- sanitized by nh3


def render(text: str, *, slug: str) -> Page:
    meta, source = split_front_matter(text)
    converter = _converter()
    converted = converter.convert(source)
    blocks = tuple(_MARKER_RE.findall(converted))
    if unknown := [name for name in blocks if name not in BLOCKS]:
        raise BrokenPage(f"docs/{slug}.md asks for generated block(s) {', '.join(unknown)}; known: {sorted(BLOCKS)}")
    # Markdown escapes a marker in code, so any other comment left is one inside a line of text.
    if len(_ANY_MARKER_RE.findall(converted)) != len(blocks):
        raise BrokenPage(f"docs/{slug}.md has a generated-block marker inside a line; give it a line of its own")
    body = sanitize(_MARKER_RE.sub(lambda m: _PLACEHOLDER.format(m[1]), converted))
    tokens = list(_walk(converter.toc_tokens))
    headings = tuple(Heading(t["id"], html.unescape(t["name"])) for t in tokens if t["level"] == 2)
    listed = entry(text, slug=slug)
    return Page(
        slug=slug,
        title=listed.title,
        summary=listed.summary,
        meta=meta,
        body=body,
        headings=headings,
        blocks=blocks,
    )


def entry(text: str, *, slug: str) -> Entry:
    """Title and summary from the front matter; without a title, the first ``# heading``."""
    meta, source = split_front_matter(text)
    h1 = _H1_RE.search(source)
    title = meta.get("title") or (h1[1].strip() if h1 else "") or slug.replace("-", " ").capitalize()
    return Entry(slug=slug, title=title, summary=meta.get("summary", ""))


def split_front_matter(text: str) -> tuple[dict, str]:
    """``key: value`` lines between ``---`` fences; the value is everything after the first colon."""
    match = _FRONT_MATTER_RE.match(text.lstrip("\ufeff"))
    if not match:
        return {}, text
    meta = {}
    for line in match[1].splitlines():
        key, sep, value = line.partition(":")
        if not sep or not key.strip() or line[:1].isspace() or line.lstrip().startswith("#"):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        meta[key.strip()] = value
    return meta, text[match.end() :]


def _walk(tokens):
    for token in tokens:
        yield token
        yield from _walk(token["children"])


class _PageLinkRewriter(Treeprocessor):
    """``tiers.md`` -> ``/docs/tiers/``: pages link to each other as files, so they read the same on
    GitHub and in an editor, and the portal serves them under their slugs."""

    def run(self, root: ElementTree.Element) -> None:
        for anchor in root.iter("a"):
            match = _PAGE_LINK_RE.match(anchor.get("href", ""))
            if match:
                anchor.set("href", f"/docs/{match[1]}/{match[2] or ''}")


class _PageLinks(Extension):
    def extendMarkdown(self, md):
        md.treeprocessors.register(_PageLinkRewriter(md), "docs_page_links", 5)


def pygments_css() -> str:
    """The stylesheet for highlighted code; ``static/css/pygments.css`` is this, written once."""
    return HtmlFormatter(style=PYGMENTS_STYLE).get_style_defs(".highlight")


# --- Generated blocks ---------------------------------------------------------------------------

# name -> a function of nothing that returns safe HTML; every value in it passed through
# format_html or escape. Register with @block("name").
BLOCKS: dict[str, Callable[[], SafeString]] = {}


def block(name: str):
    if not SLUG_RE.fullmatch(name):
        raise ValueError(f"a generated block's name is [a-z0-9-]+, not {name!r}")

    def register(function):
        BLOCKS[name] = function
        return function

    return register


def _tiers() -> list[Tier]:
    """Every tier, in upgrade order. Tier has no public/private flag: every tier is one partners can
    be on, so every tier is documented."""
    return list(Tier.objects.order_by("rank"))


@dataclass(frozen=True)
class PolicyRow:
    name: str  # as the RateLimit-Policy header and a 429 name it
    counted_per: str
    window: int  # seconds
    quotas: tuple[int | None, ...]  # per tier, in the order given; None: no such policy on that tier


def policy_rows(tiers: list[Tier], group: str) -> list[PolicyRow]:
    """Every policy a request of ``group`` is held to, with each tier's quota, for an organization
    without overrides. The numbers are ``effective_quotas``, the limiters' own function, so the token's
    and the patient's shares are derived exactly as the limiter derives them; the names follow
    ``api.ratelimit`` and ``partners.token_limits`` (tests/portal/test_docs.py holds them to it)."""
    quotas = [effective_quotas(tier.rate_quotas, {}, group) for tier in tiers]

    def per_tier(key: str) -> tuple[int | None, ...]:
        return tuple(quota.get(key) or None for quota in quotas)

    if group == token_limits.GROUP:
        rows = [
            PolicyRow(f"client-{group}-{token_limits.WINDOW_NAMES[key]}", "one client (app)", seconds, per_tier(key))
            for key, seconds in QUOTA_WINDOWS.items()
        ]
        address_rows = [
            (token_limits.address_policy(""), "one address (IP), whichever client it names"),
            (token_limits.failure_policy(""), "failed requests from one address; at the quota, it is refused"),
        ]
        rows += [
            PolicyRow(policy.name, counted_per, policy.window, (policy.quota,) * len(tiers))
            for policy, counted_per in address_rows
            if policy is not None
        ]
        return rows
    rows = [
        PolicyRow(
            f"org-{group}-{ratelimit.WINDOW_NAMES[key]}",
            "your organization",
            seconds,
            per_tier(key),
        )
        for key, seconds in QUOTA_WINDOWS.items()
    ]
    rows.append(PolicyRow(f"token-{group}-minute", "one access token", 60, per_tier("per_token_per_minute")))
    rows.append(
        PolicyRow(
            f"patient-{group}-minute",
            "one patient, whichever of your tokens asks",
            60,
            per_tier("per_patient_per_minute"),
        )
    )
    return rows


def _count(value) -> str:
    return f"{value:,}" if value else "—"


def _cells(values, template: str = "<td>{}</td>") -> SafeString:
    return format_html_join("", template, ((value,) for value in values))


def _no_tiers() -> SafeString:
    return format_html('<p class="muted">{}</p>', "No tiers are configured yet.")


@block("rate-limit-policies")
def rate_limit_policies() -> SafeString:
    """Per endpoint group, every policy with each tier's quota: what a 429 or a header names, looked up."""
    tiers = _tiers()
    if not tiers:
        return _no_tiers()
    head = _cells((tier.name for tier in tiers), '<th scope="col" class="num">{}</th>')
    groups = []
    for group, description in ENDPOINT_GROUPS.items():
        # Each row's id is its policy's name, so a policy can be linked to: /docs/rate-limits/#org-writes-day.
        rows = format_html_join(
            "\n",
            '<tr id="{}"><th scope="row"><code>{}</code></th><td>{}<br><span class="muted">{}</span></td>{}</tr>',
            (
                (
                    row.name,
                    row.name,
                    row.counted_per,
                    f"per {duration(row.window).removeprefix('1 ')}",
                    _cells((_count(q) for q in row.quotas), '<td class="num">{}</td>'),
                )
                for row in policy_rows(tiers, group)
            ),
        )
        groups.append(
            format_html(
                '<section class="generated-group" aria-labelledby="group-{}">\n'
                '<h3 id="group-{}"><code>{}</code> {}</h3>\n'
                '<div class="table-wrap"><table class="table table-compact">\n'
                '<thead><tr><th scope="col">Policy</th><th scope="col">Counted per</th>{}</tr></thead>\n'
                "<tbody>\n{}\n</tbody>\n</table></div>\n</section>",
                group,
                group,
                group,
                description,
                head,
                rows,
            )
        )
    return format_html(
        '<div class="generated" data-block="rate-limit-policies">\n{}\n<p class="generated-note">{}</p>\n</div>',
        format_html_join("\n", "{}", ((g,) for g in groups)),
        "Built from the tier configuration the rate limits read, when this page was loaded; — means no "
        "quota in that window. An organization with its own overrides sees its numbers in its responses' "
        "RateLimit-Policy header and on its apps' Usage pages.",
    )


def _codes(values) -> SafeString:
    return format_html_join(", ", "<code>{}</code>", ((value,) for value in values))


def _scope_cells(tiers: list[Tier]) -> list[SafeString]:
    """Per tier, the scopes it may grant: all of them for the first tier, then what each one changes."""
    cells: list[SafeString] = []
    previous: list[str] | None = None
    for tier in tiers:
        scopes = list(tier.allowed_scopes)
        if previous is None:
            cells.append(_codes(scopes) or format_html("{}", "none"))
        else:
            changes = []
            if added := [scope for scope in scopes if scope not in previous]:
                changes.append(format_html("adds {}", _codes(added)))
            if dropped := [scope for scope in previous if scope not in scopes]:
                changes.append(format_html("drops {}", _codes(dropped)))
            cells.append(
                format_html_join("; ", "{}", ((c,) for c in changes)) or format_html("{}", "same as the tier before")
            )
        previous = scopes
    return cells


@block("tier-comparison")
def tier_comparison() -> SafeString:
    """What each tier allows, side by side, from the tiers themselves."""
    tiers = _tiers()
    if not tiers:
        return _no_tiers()

    def quota_cell(tier: Tier, group: str) -> SafeString:
        quota = effective_quotas(tier.rate_quotas, {}, group)
        return format_html_join(
            " · ", "{}/{}", ((_count(quota.get(key)), ratelimit.WINDOW_NAMES[key]) for key in QUOTA_WINDOWS)
        )

    rows: list[tuple[str | SafeString, list]] = [
        ("Environment", ["sandbox and production" if t.production_credentials else "sandbox" for t in tiers]),
        ("Write access", ["yes" if t.write_access else "no" for t in tiers]),
        ("Apps", [_count(t.max_apps) for t in tiers]),
        ("Webhook subscriptions", [_count(t.max_webhook_subscriptions) for t in tiers]),
        (
            "Access token lifetime (patient-facing / system)",
            [f"{duration(t.patient_token_lifetime)} / {duration(t.system_token_lifetime)}" for t in tiers],
        ),
        ("Refresh token lifetime", [duration(t.refresh_token_lifetime) for t in tiers]),
        ("Scopes it may grant", _scope_cells(tiers)),
        *(
            (
                format_html('Quota: <code>{}</code> <span class="muted">{}</span>', group, description),
                [quota_cell(tier, group) for tier in tiers],
            )
            for group, description in ENDPOINT_GROUPS.items()
        ),
    ]
    body = format_html_join(
        "\n", '<tr><th scope="row">{}</th>{}</tr>', ((label, _cells(cells)) for label, cells in rows)
    )
    return format_html(
        '<div class="generated" data-block="tier-comparison"><div class="table-wrap">'
        '<table class="table table-compact">\n<thead><tr><td></td>{}</tr></thead>\n'
        "<tbody>\n{}\n</tbody>\n</table></div></div>",
        _cells((t.name for t in tiers), '<th scope="col">{}</th>'),
        body,
    )


# --- Events --------------------------------------------------------------------------------------


def _json(value) -> SafeString:
    """``value`` as indented, highlighted JSON. Pygments escapes every character of the text it is
    given, so catalogue text can never become markup."""
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return mark_safe(highlight(text, JsonLexer(), HtmlFormatter(cssclass="highlight")))  # noqa: S308 - escaped by Pygments


def _audience(event_type: events.EventType) -> SafeString:
    if event_type.audience == events.PATIENT:
        return format_html(
            "Apps holding, when it happens, an active consent of the patient that covers <code>{}</code>. An "
            "app without one never learns of it.",
            event_type.data_class,
        )
    return format_html(
        "{}",
        {
            events.APP: "The app the consent is for, even once the consent is revoked or expired.",
            events.ORGANIZATION: "Every app of the organization it is about.",
            events.EVERYONE: "Every app.",
            events.SUBSCRIPTION: "Only the webhook subscription it is sent to; never the event feed.",
        }.get(event_type.audience, event_type.audience),
    )


@block("event-catalogue")
def event_catalogue() -> SafeString:
    """Every event type of ``partners.events.CATALOGUE``: an index, then a section each (its anchor is
    the type with dots as hyphens: /docs/events/#appointment-booked) with the example message and the
    JSON schema that GET /api/v1/event-types serves."""
    catalogue = list(events.CATALOGUE.values())
    index = format_html_join(
        "\n",
        '<tr><th scope="row"><a href="#{}"><code>{}</code></a></th><td class="num">{}</td><td>{}</td><td>{}</td></tr>',
        ((event_type_anchor(e.name), e.name, e.version, e.audience, e.summary) for e in catalogue),
    )
    sections = format_html_join(
        "\n",
        '<section class="generated-group event-type" aria-labelledby="{}">\n'
        '<h3 id="{}"><code>{}</code> <span class="muted">version {}</span></h3>\n'
        "<p>{}</p>\n"
        '<dl class="event-facts">\n'
        "<dt>Who receives it</dt><dd>{}</dd>\n"
        "<dt>Caused by</dt><dd>{}</dd>\n"
        "<dt>In the event feed</dt><dd>{}</dd>\n"
        "</dl>\n"
        "<p><strong>Example message</strong></p>\n{}\n"
        "<details><summary>JSON schema of the message</summary>\n{}\n</details>\n"
        "</section>",
        (
            (
                event_type_anchor(e.name),
                event_type_anchor(e.name),
                e.name,
                e.version,
                e.summary,
                _audience(e),
                e.cause or "—",
                "yes" if e.feed else "no",
                _json(example_envelope(e)),
                _json(events.envelope_schema(e)),
            )
            for e in catalogue
        ),
    )
    return format_html(
        '<div class="generated" data-block="event-catalogue">\n'
        '<div class="table-wrap"><table class="table table-compact">\n'
        '<thead><tr><th scope="col">Type</th><th scope="col" class="num">Version</th><th scope="col">Audience</th>'
        '<th scope="col">What happened</th></tr></thead>\n'
        "<tbody>\n{}\n</tbody>\n</table></div>\n{}\n"
        '<p class="generated-note">{}</p>\n</div>',
        index,
        sections,
        "Built from the catalogue the platform publishes from, when this page was loaded; "
        "GET /api/v1/event-types serves the same schemas and examples.",
    )


@block("webhook-subscription-caps")
def webhook_subscription_caps() -> SafeString:
    """How many webhook subscriptions an organization may have on each tier, from the tiers themselves."""
    tiers = _tiers()
    if not tiers:
        return _no_tiers()
    return format_html(
        '<div class="generated" data-block="webhook-subscription-caps"><div class="table-wrap">'
        '<table class="table table-compact">\n<thead><tr><td></td>{}</tr></thead>\n'
        '<tbody>\n<tr><th scope="row">{}</th>{}</tr>\n</tbody>\n</table></div></div>',
        _cells((t.name for t in tiers), '<th scope="col">{}</th>'),
        "Webhook subscriptions per organization (all its apps, disabled ones included)",
        _cells((_count(t.max_webhook_subscriptions) for t in tiers), '<td class="num">{}</td>'),
    )


# --- Error codes: one page each, at the URI every problem carries in ``type`` -----------------------

# Codes renamed since they were first sent: their old ``type`` URIs still lead to the page.
RENAMED_ERROR_CODES = {"rate_limited": "quota_exceeded"}


def error_code(code: str):
    """The catalogue entry of ``code`` (``api.errors``), or None."""
    from api import errors

    return errors.ERRORS.get(code)


@block("error-catalogue")
def error_catalogue() -> SafeString:
    """Every error code the API sends, by the layer that sends it, each linking to its own page."""
    from api import errors

    sections = []
    for layer in errors.LAYERS:
        codes = sorted((e for e in errors.ERRORS.values() if e.layer == layer), key=lambda e: (e.status, e.code))
        if not codes:
            continue
        rows = format_html_join(
            "\n",
            '<tr id="{}"><td><a href="{}"><code>{}</code></a></td><td class="num">{}</td><td>{}</td></tr>',
            ((e.code, errors.docs_path(e.code), e.code, e.status, e.title) for e in codes),
        )
        sections.append(
            format_html(
                '<h3 id="layer-{}">Layer: {}</h3><div class="table-wrap"><table class="table table-compact">'
                "<thead><tr><th>Code</th><th>Status</th><th>Title</th></tr></thead><tbody>\n{}\n</tbody>"
                "</table></div>",
                layer,
                layer,
                rows,
            )
        )
    body = format_html_join("\n", "{}", ((section,) for section in sections))
    return format_html('<div class="generated" data-block="error-catalogue">{}</div>', body)


# --- Scopes: from the registry the token endpoint, the consent screen and discovery use -------------


def _scope_table(kinds: tuple[str, ...], columns: tuple[str, ...], row) -> SafeString:
    from partners.scopes import documented_scopes

    scopes = [scope for scope in documented_scopes() if scope.kind in kinds]
    head = format_html_join("", "<th>{}</th>", ((column,) for column in columns))
    body = format_html_join("\n", "<tr>{}</tr>", ((row(scope),) for scope in scopes))
    return format_html(
        '<div class="generated" data-block="scopes"><div class="table-wrap"><table class="table table-compact">'
        "<thead><tr>{}</tr></thead><tbody>\n{}\n</tbody></table></div></div>",
        head,
        body,
    )


@block("scope-resource-examples")
def scope_resource_examples() -> SafeString:
    return _scope_table(
        ("resource",),
        ("scope", "what the patient reads on the consent screen"),
        lambda s: format_html('<td id="{}"><code>{}</code></td><td>{}</td>', s.name, s.name, s.sentence),
    )


@block("scope-session")
def scope_session() -> SafeString:
    return _scope_table(
        ("launch", "identity", "access"),
        ("scope", "what the patient reads", "can the patient untick it?"),
        lambda s: format_html(
            '<td id="{}"><code>{}</code></td><td>{}</td><td>{}</td>',
            s.name,
            s.name,
            s.sentence,
            "yes" if s.optional else "no",
        ),
    )


@block("scope-workflow")
def scope_workflow() -> SafeString:
    from partners.scopes import DATA_CLASSES

    return _scope_table(
        ("workflow",),
        ("scope", "what the patient reads", "data class"),
        lambda s: format_html(
            '<td id="{}"><code>{}</code></td><td>{}</td><td>{}</td>',
            s.name,
            s.name,
            s.sentence,
            DATA_CLASSES[s.data_class].description if s.data_class in DATA_CLASSES else s.data_class,
        ),
    )


# Blocks built from the published API documents and the sandbox's data live in their own module; importing
# it registers them.
from portal import docs_blocks  # noqa: E402, F401
