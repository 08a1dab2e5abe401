import re

import pytest

from partners.models import Membership
from tests.factories import member

LINK = re.compile(r"https?://testserver(/\S+)")


def link_in(message) -> str:
    """The first portal link in an email's body, as a path the test client can GET."""
    match = LINK.search(message.body)
    assert match, f"no link in: {message.body}"
    return match.group(1)


@pytest.fixture
def owner(db) -> Membership:
    return member(Membership.Role.OWNER)


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner.user)
    return client


def login_as(client, role: str, organization=None) -> Membership:
    membership = member(role, organization=organization)
    client.force_login(membership.user)
    return membership
