from partners import selectors


def portal(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"unread_inbox_count": 0, "my_memberships": []}
    return {
        "unread_inbox_count": selectors.unread_count(user),
        "my_memberships": list(selectors.memberships_of(user)),
    }
