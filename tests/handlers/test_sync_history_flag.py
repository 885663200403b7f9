"""The sync answer says whether the provider's history is all imported, so nobody is told it is done when it is not.

A sync reads the first pages of each list itself (JOBSYNC_SYNC_FIRST_PAGES, 2 by default: 20 jobs with
the fake's pages of 10) and hands the rest to the history importer, which runs in the background.
"""

from __future__ import annotations

from tests.fakes.replicate import replicate_job
from tests.handlers.test_sync_and_listing import stamp

IMPORTER = "jobsync-test-history-importer"


def test_a_deep_history_is_not_complete_until_the_background_import_ends(api, replicate, handed_off):
    for n in range(45):
        replicate.add(replicate_job("succeeded", created_at=stamp(n)))

    first = api.call("sync_jobs")[1]
    while_importing = api.call("sync_jobs")[1]
    ran = handed_off.drain(IMPORTER, "history_importer")
    after = api.call("sync_jobs")[1]

    assert (first["synced"], first["history_complete"]) == (20, False)
    assert first["message"].startswith("Discovered 20 new jobs from Replicate; the rest of the history")
    assert (while_importing["synced"], while_importing["history_complete"]) == (0, False)
    assert while_importing["message"].endswith("the history import is still running")
    assert len(handed_off.to(IMPORTER)) == 1 and ran == 1  # the second sync started nothing
    assert after == {
        "synced": 0,
        "updated": 0,
        "message": "Discovered 0 new jobs from Replicate",
        "history_complete": True,
    }
    assert len(api.call("list_jobs", query={"limit": "500"})[1]["jobs"]) == 45


def test_a_small_history_is_complete_after_one_sync_and_stays_so(api, replicate, handed_off):
    for n in range(3):
        replicate.add(replicate_job("succeeded", created_at=stamp(n)))

    first, second = (api.call("sync_jobs") for _ in range(2))

    assert first == (200, {**first[1], "synced": 3, "history_complete": True})
    assert first[1]["message"] == "Discovered 3 new jobs from Replicate"
    assert second[1]["history_complete"] is True and second[1]["synced"] == 0
    assert handed_off.calls == []  # nothing left for the background


def test_first_pages_of_known_jobs_still_running_leave_nothing_to_the_background(
    api, replicate, handed_off, monkeypatch
):
    from jobsync import wiring

    monkeypatch.setenv("JOBSYNC_SYNC_FIRST_PAGES", "1")
    wiring.reset()
    for n in range(15):
        replicate.add(replicate_job("succeeded", created_at=stamp(n)))
    for n in range(10):  # the newest page: all running
        replicate.add(replicate_job("processing", created_at=stamp(100 + n)))
    api.call("sync_jobs")
    handed_off.drain(IMPORTER, "history_importer")
    before = len(handed_off.calls)

    answers = [api.call("sync_jobs")[1] for _ in range(2)]

    # No new job on the page read: nothing newer is below it (its running jobs are the poller's to refresh).
    assert [answer["history_complete"] for answer in answers] == [True, True]
    assert len(handed_off.calls) == before


def test_a_sync_answers_after_its_time_budget_and_leaves_the_rest_to_the_background(
    api, replicate, handed_off, invocation_clock, monkeypatch
):
    route = replicate._route

    def a_second_per_list_page(request, path):  # a slow day at the provider
        if path in ("/predictions", "/trainings"):
            invocation_clock.advance(1.0)
        return route(request, path)

    monkeypatch.setattr(replicate, "_route", a_second_per_list_page)
    for n in range(25):
        replicate.add(replicate_job("succeeded", created_at=stamp(n)))

    answer = api.call("sync_jobs")[1]

    # The (empty) trainings list and one page of predictions took 2 s: past the 1 s budget, no page is
    # started; the second page of predictions goes to the importer with the rest.
    assert (answer["synced"], answer["history_complete"]) == (10, False)
    assert replicate.count("GET", "/predictions") == 1
    handed_off.drain(IMPORTER, "history_importer")
    assert api.call("metrics")[1]["job_count"] == 25
