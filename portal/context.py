"""The current organization of a request, and the decorator org-scoped views use to get it.

The current organization is ``request.session["current_org_id"]`` while the user is still a member
of it; otherwise the first organization they belong to (memberships are ordered by name).
"""

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect

from partners import selectors
from partners.models import Membership

SESSION_KEY = "current_org_id"
_CACHE_ATTR = "_portal_current_membership"


def memberships(request) -> list[Membership]:
    """The user's memberships (with organization and tier), read once per request."""
    cached = getattr(request, "_portal_memberships", None)
    if cached is None:
        user = getattr(request, "user", None)
        cached = list(selectors.memberships_of(user)) if user is not None and user.is_authenticated else []
        request._portal_memberships = cached
    return cached


def current_membership(request) -> Membership | None:
    """The membership in the current organization, or ``None`` when the user belongs to none."""
    if hasattr(request, _CACHE_ATTR):
        return getattr(request, _CACHE_ATTR)
    mine = memberships(request)
    wanted = request.session.get(SESSION_KEY) if hasattr(request, "session") else None
    chosen = next((m for m in mine if m.organization_id == wanted), None) or (mine[0] if mine else None)
    setattr(request, _CACHE_ATTR, chosen)
    return chosen


def set_current_organization(request, organization_id: int) -> None:
    request.session[SESSION_KEY] = organization_id
    for attr in (_CACHE_ATTR, "_portal_memberships"):
        if hasattr(request, attr):
            delattr(request, attr)


def organization_required(view):
    """Log-in required, then resolve the current organization onto ``request.membership`` and
    ``request.organization``; a user with no organization is sent to create one."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        membership = current_membership(request)
        if membership is None:
            messages.info(request, "Create an organization first: apps and tiers belong to an organization.")
            return redirect("portal:organization-create")
        request.membership = membership
        request.organization = membership.organization
        return view(request, *args, **kwargs)

    return login_required(wrapper)
