"""Guards in marketplace.quota: counters a request must find room in without being counted by them,
checked in the same round trip as the counted ones (on Redis when REDIS_URL is set, else locmem)."""

from marketplace import quota
from marketplace.quota import Policy

T = 1_800_000_000.0
REQUESTS = Policy("requests", 3, 60, "scope:1")
FAILURES = Policy("failures", 2, 900, "scope:1")


def test_a_guard_is_checked_and_announced_but_not_counted():
    verdict = quota.check_guarded([REQUESTS], [FAILURES], "g", now=T)
    assert verdict.admitted
    assert verdict.counts == [1, 0]
    assert verdict.headers()["RateLimit-Policy"] == '"requests";q=3;w=60, "failures";q=2;w=900'
    assert quota.peek([REQUESTS, FAILURES], "g", now=T).counts == [1, 0]


def test_a_full_guard_refuses_and_the_refusal_counts_nothing():
    assert quota.add([FAILURES], "g", now=T) == [1]
    assert quota.add([FAILURES], "g", now=T + 5) == [2]
    verdict = quota.check_guarded([REQUESTS], [FAILURES], "g", now=T + 10)
    assert not verdict.admitted
    assert verdict.violated == [FAILURES]
    assert verdict.retry_after() == 890
    assert verdict.headers()["Retry-After"] == "890"
    assert quota.peek([REQUESTS, FAILURES], "g", now=T + 10).counts == [0, 2]
    assert quota.check_guarded([REQUESTS], [FAILURES], "g", now=T + 900).admitted  # the next window


def test_a_full_counter_refuses_as_check_does():
    for _ in range(3):
        assert quota.check_guarded([REQUESTS], [FAILURES], "g", now=T).admitted
    verdict = quota.check_guarded([REQUESTS], [FAILURES], "g", now=T)
    assert verdict.violated == [REQUESTS]
    assert verdict.counts == [3, 0]


def test_giving_back_a_guarded_verdict_leaves_the_guards_alone():
    quota.add([FAILURES], "g", now=T)
    verdict = quota.check_guarded([REQUESTS], [FAILURES], "g", now=T)
    back = quota.give_back(verdict)
    assert back.counts == [0, 1]
    assert quota.peek([REQUESTS, FAILURES], "g", now=T).counts == [0, 1]


def test_without_guards_it_is_check():
    verdict = quota.check_guarded([REQUESTS], [], "g", now=T)
    assert verdict.admitted and verdict.counts == [1]
    assert quota.check([REQUESTS], "g", now=T).counts == [2]  # the same counter
