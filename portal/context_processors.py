from partners import selectors
from portal.context import current_membership, memberships

# Which nav item a page belongs to, by URL name.
NAV_SECTIONS = {
    "apps": "apps",
    "app-create": "apps",
    "app-detail": "apps",
    "app-edit": "apps",
    "app-keys": "apps",
    "app-access-log": "apps",
    "organization": "organization",
    "organization-create": "organization",
    "tiers": "tiers",
    "inbox": "inbox",
    "inbox-message": "inbox",
    "diagnostics": "diagnostics",
    "diagnostics-denials": "diagnostics",
}
# Pages that make sense for any organization, so switching organization can stay on them.
SWITCH_STAYS_ON = {"home", "apps", "organization", "tiers", "inbox", "diagnostics"}


def portal(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"unread_inbox_count": 0, "my_memberships": [], "current_membership": None}
    membership = current_membership(request)
    match = getattr(request, "resolver_match", None)
    url_name = match.url_name if match and match.namespace == "portal" else ""
    return {
        "unread_inbox_count": selectors.unread_count(user),
        "my_memberships": memberships(request),
        "current_membership": membership,
        "current_organization": membership.organization if membership else None,
        "nav_section": NAV_SECTIONS.get(url_name, ""),
        "switch_next": request.path if url_name in SWITCH_STAYS_ON else "",
    }
