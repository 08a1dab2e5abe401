from django import template
from django.utils.http import url_has_allowed_host_and_scheme

register = template.Library()

_UNITS = (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1))


@register.filter
def duration(seconds) -> str:
    """3600 -> "1 hour", 300 -> "5 minutes", 7776000 -> "90 days"."""
    try:
        seconds = int(seconds)
    except (TypeError, ValueError):
        return ""
    if seconds <= 0:
        return "0 seconds"
    for name, size in _UNITS:
        if seconds % size == 0:
            count = seconds // size
            return f"{count:,} {name}{'' if count == 1 else 's'}"
    return f"{seconds:,} seconds"


@register.filter
def local_link(value) -> str:
    """The value if it is a path on this site, else an empty string (never a ``javascript:`` link)."""
    value = str(value or "")
    if value.startswith("/") and url_has_allowed_host_and_scheme(value, allowed_hosts=None):
        return value
    return ""


@register.filter
def get_item(mapping, key):
    try:
        return mapping.get(key)
    except AttributeError:
        return None
