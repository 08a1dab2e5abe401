"""Errors the partner services raise. Views turn them into messages, admin into notices.

Input that fails validation raises Django's ``ValidationError`` (field by field); these are for
requests that are well formed but not allowed in the current state or by the caller's role.
"""


class PartnerError(Exception):
    """A business rule refused the operation; ``str(error)`` is safe to show to the caller."""

    code = "partner_error"


class NotPermitted(PartnerError):
    """The caller's role or relationship does not allow this."""

    code = "not_permitted"


class InvalidState(PartnerError):
    """The object is not in a state where this can happen (already decided, suspended, ...)."""

    code = "invalid_state"


class TierLimitReached(NotPermitted):
    """The organization's tier does not allow this (production apps, number of apps, ...);
    the fix is an upgrade, not a different role."""

    code = "tier_limit"
