"""The sync answer says whether the provider's history is all imported, so nobody is told it is done when it is not."""

from __future__ import annotations

from tests.fakes.replicate import replicate_job
from tests.handlers.test_sync_and_listing import _capped, stamp


def test_a_sync_stopped_by_the_cap_says_the_history_is_not_complete_until_it_is(api, replicate, monkeypatch):
    _capped(monkeypatch, 15)
    for n in range(45):
        replicate.add(replicate_job("succeeded", created_at=stamp(n)))

    answers = [api.call("sync_jobs")[1] for _ in range(3)]

    assert [(a["synced"], a["history_complete"]) for a in answers] == [(20, False), (20, False), (5, True)]


def test_a_small_history_is_complete_after_one_sync_and_stays_so(api, replicate):
    for n in range(3):
        replicate.add(replicate_job("succeeded", created_at=stamp(n)))

    first, second = (api.call("sync_jobs") for _ in range(2))

    assert first == (200, {**first[1], "synced": 3, "history_complete": True})
    assert second[1]["history_complete"] is True and second[1]["synced"] == 0
