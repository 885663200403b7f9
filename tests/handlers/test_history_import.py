"""The background history import (history_importer): one importer at a time, resumable from DynamoDB.

The importer's invocations run through their handler, as Lambda's async invoke runs them
(`handed_off.drain`). Time never depends on the machine: the invocation's clock is frozen and moved
by each list request the fake provider answers, and the lease's clock is a test clock.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest

from jobsync import wiring
from jobsync.services import history_import
from jobsync.store.imports import Segment
from tests.conftest import LambdaContext, load_handler
from tests.fakes.replicate import replicate_job
from tests.handlers.test_live_updates import connect, posted  # noqa: F401 - `posted` is a fixture
from tests.handlers.test_sync_and_listing import stamp

IMPORTER = "jobsync-test-history-importer"
# With 60 s left at the start and 2 s kept in reserve, a page is started while 5 s or more are left:
# when each list request takes 20 s, an invocation reads 3 pages.
SECONDS_PER_LIST_REQUEST = 20.0


class LeaseClock:
    """Stands in for `time` in services/history_import: epoch seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def time(self) -> float:
        return self.now

    def __getattr__(self, name: str) -> Any:
        import time

        return getattr(time, name)


@pytest.fixture
def lease_clock(monkeypatch) -> LeaseClock:
    clock = LeaseClock()
    monkeypatch.setattr(history_import, "time", clock)
    return clock


@pytest.fixture
def slow_lists(replicate, invocation_clock, monkeypatch):
    """Each list page past the first two (those a sync reads itself, within its one-second budget) takes
    SECONDS_PER_LIST_REQUEST of the invocation's time; returns the cursors of the pages read, in order
    ("0" for a list's top)."""
    read: list[tuple[str, str]] = []
    route = replicate._route

    def timed(request, path):
        if path in ("/predictions", "/trainings"):
            cursor = request.url.params.get("cursor", "0")
            read.append((path, cursor))
            if int(cursor) >= 2 * replicate.page_size:
                invocation_clock.advance(SECONDS_PER_LIST_REQUEST)
        return route(request, path)

    monkeypatch.setattr(replicate, "_route", timed)
    return read


def history(replicate, count: int, kind: str = "prediction") -> None:
    for n in range(count):
        replicate.add(replicate_job("succeeded", created_at=stamp(n)), kind=kind)


def stored_ids() -> set[str]:
    from tests.conftest import Api

    jobs = Api().call("list_jobs", query={"limit": "500"})[1]["jobs"]
    return {job["job_id"] for job in jobs}


def import_state():
    return wiring.import_store().get("replicate")


def run_importer(payload: dict[str, Any]) -> dict[str, Any]:
    return load_handler("history_importer")(payload, LambdaContext(function_name=IMPORTER))


def test_the_importer_goes_on_invocation_after_invocation_until_the_end(api, replicate, handed_off, slow_lists):
    history(replicate, 95)  # pages of 10: the sync reads 2, the importer the other 8

    assert api.call("sync_jobs")[1]["synced"] == 20
    ran = handed_off.drain(IMPORTER, "history_importer")

    assert ran == 3  # 3 + 3 + 2 pages, each invocation handing off the next
    payloads = handed_off.to(IMPORTER)
    assert len(payloads) == 3 and all(payload["provider"] == "replicate" for payload in payloads)
    assert len({payload["lease"] for payload in payloads}) == 3  # each run hands over a lease of its own
    assert len(stored_ids()) == 95
    pages = [cursor for path, cursor in slow_lists if path == "/predictions"]
    assert pages == [str(n) for n in range(0, 100, 10)]  # every page read once, none twice
    state = import_state()
    assert not state.running and state.imported == 95 and state.lease is None
    assert state.history_imported == {"prediction", "training"}


def test_two_concurrent_syncs_start_one_import(api, replicate, handed_off):
    history(replicate, 60)
    history(replicate, 30, kind="training")
    answers: list[tuple[int, Any]] = []
    start = threading.Barrier(2)

    def press() -> None:
        start.wait()
        answers.append(api.call("sync_jobs"))

    threads = [threading.Thread(target=press) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [status for status, _ in answers] == [200, 200]
    assert all(body["history_complete"] is False for _, body in answers)
    assert len(handed_off.to(IMPORTER)) == 1  # the lease: one importer started, not two
    assert sorted("still running" in body["message"] for _, body in answers) == [False, True]
    handed_off.drain(IMPORTER, "history_importer")
    assert len(stored_ids()) == 90 and not import_state().running
    # Nothing was stored twice: the metric counters equal the jobs.
    assert api.call("metrics")[1]["job_count"] == 90


def test_a_second_delivery_of_one_hand_off_does_nothing(api, replicate, handed_off, slow_lists):
    history(replicate, 95)
    api.call("sync_jobs")
    payload = handed_off.to(IMPORTER)[0]

    first = run_importer(payload)
    again = run_importer(payload)  # Lambda's async invoke delivers at least once

    assert first["ran"] is True and first["pages"] == 3
    assert again == {**again, "ran": False, "pages": 0}


def test_a_lost_hand_off_is_resumed_by_the_poller_tick_once_the_lease_expires(
    api, replicate, handed_off, lease_clock, poller_clock
):
    from jobsync.services.polling import poll_tick

    history(replicate, 45)
    api.call("sync_jobs")
    handed_off.waiting.clear()  # the invocation never ran (the local stack crashed, Lambda lost it)

    poll_tick()
    assert len(handed_off.to(IMPORTER)) == 1  # the lease still holds: a hand-off may be on its way
    lease_clock.now += 61  # the lease (a minute by default) has expired
    poll_tick()

    assert len(handed_off.to(IMPORTER)) == 2
    handed_off.drain(IMPORTER, "history_importer")
    assert len(stored_ids()) == 45 and not import_state().running


def test_a_passing_provider_fault_pauses_the_import_where_it_was_and_the_tick_goes_on_from_there(
    api, replicate, handed_off, slow_lists, poller_clock
):
    from jobsync.services.polling import poll_tick

    history(replicate, 95)
    api.call("sync_jobs")  # pages 0 and 10
    run_importer(handed_off.to(IMPORTER)[0])  # pages 20, 30, 40
    handed_off.waiting.clear()
    replicate.fail_next("GET", "/predictions", *[503] * 10)  # every retry of the next page fails

    paused = run_importer(handed_off.to(IMPORTER)[1])
    assert paused["ran"] is True and paused["done"] is False and paused["handed_off"] is False
    assert import_state().lease is None and import_state().segments[0].page is not None
    replicate.failures.clear()
    poll_tick()  # the lease is free: the tick starts the import again
    handed_off.drain(IMPORTER, "history_importer")

    assert len(stored_ids()) == 95
    pages = [cursor for path, cursor in slow_lists if path == "/predictions"]
    assert pages.count("20") == 1 and pages[-1] == "90"  # resumed at the saved page, nothing re-read


def test_a_saved_cursor_the_provider_refuses_starts_that_list_over(api, replicate, handed_off):
    history(replicate, 45)
    api.call("sync_jobs")
    store = wiring.import_store()
    state = import_state()
    # A cursor the client will not follow (another host): refused like one the provider forgot.
    broken = Segment(state.segments[0].kind, "https://gone.example/v1/predictions?cursor=20", True)
    store.change("replicate", lambda current: replace(current, segments=(broken,)))
    replicate.requests.clear()

    handed_off.drain(IMPORTER, "history_importer")

    assert len(stored_ids()) == 45 and not import_state().running
    assert replicate.count("GET", "/predictions") == 5  # the list read again from its top, to its end


def test_a_burst_deeper_than_the_first_pages_is_imported_in_the_background_down_to_the_stored_jobs(
    api, replicate, handed_off, slow_lists
):
    history(replicate, 25)
    api.call("sync_jobs")
    handed_off.drain(IMPORTER, "history_importer")
    for n in range(40):
        replicate.add(replicate_job("succeeded", created_at=stamp(1000 + n)))
    slow_lists.clear()

    answer = api.call("sync_jobs")[1]
    handed_off.drain(IMPORTER, "history_importer")

    assert (answer["synced"], answer["history_complete"]) == (20, False)
    assert len(stored_ids()) == 65
    pages = [cursor for path, cursor in slow_lists if path == "/predictions"]
    # 2 pages in the sync, then 20, 30 (new), 40 (the first page of stored, ended jobs): not 50 or 60.
    assert pages == ["0", "10", "20", "30", "40"]


def test_every_websocket_client_hears_the_import_s_progress_and_its_end(api, replicate, handed_off, posted):  # noqa: F811
    sent, _ = posted
    assert connect("watcher") == 200
    history(replicate, 45)

    api.call("sync_jobs")
    handed_off.drain(IMPORTER, "history_importer")

    progress = [message for message in sent["watcher"] if message["type"] == "sync_progress"]
    assert progress and progress[-1] == {"type": "sync_progress", "imported": 45, "done": True}
    assert all(not message["done"] for message in progress[:-1])


def test_an_event_without_a_known_provider_is_refused_and_changes_nothing(tables):
    assert run_importer({"provider": "elsewhere", "lease": "x"})["ran"] is False
    assert run_importer({"lease": 3})["ran"] is False
    assert not import_state().running


def test_an_import_cut_short_before_the_background_import_existed_goes_on_from_where_it_stopped(
    api, replicate, handed_off, slow_lists
):
    from tests.fakes.replicate import BASE_URL

    history(replicate, 45)
    # What a stack of the earlier sync (a cap per press) kept: the predictions' history stopped at page 30.
    wiring.state_store().save_sync_progress(
        "replicate", "prediction", history_imported=False, resume_page=f"{BASE_URL}/predictions?cursor=30"
    )
    wiring.state_store().save_sync_progress("replicate", "training", history_imported=True, resume_page=None)

    api.call("sync_jobs")
    handed_off.drain(IMPORTER, "history_importer")

    assert len(stored_ids()) == 45 and not import_state().running
    pages = [cursor for path, cursor in slow_lists if path == "/predictions"]
    # The sync's two pages, the kept position to the end, then the gap between them (page 30 was read).
    assert pages == ["0", "10", "30", "40", "20"]


def test_an_importer_that_died_mid_import_is_taken_over_from_its_cursor_once_its_lease_expires(
    api, replicate, handed_off, slow_lists, lease_clock, poller_clock, monkeypatch
):
    from jobsync.services.polling import poll_tick

    history(replicate, 95)
    api.call("sync_jobs")  # pages 0 and 10
    real_import_page, pages_done = history_import.import_page, []

    def dies_on_the_third_page(client, observations, seen, new_jobs=None):
        if len(pages_done) == 2:
            raise SystemExit("the process was killed")  # nothing after this runs: no release, no hand-off
        pages_done.append(1)
        return real_import_page(client, observations, seen, new_jobs)

    with monkeypatch.context() as dying, pytest.raises(SystemExit):
        dying.setattr(history_import, "import_page", dies_on_the_third_page)
        dying.setattr(history_import, "_release", lambda provider, lease: None)
        handed_off.drain(IMPORTER, "history_importer")

    poll_tick()
    assert len(handed_off.to(IMPORTER)) == 1  # its lease still holds
    lease_clock.now += 61
    poll_tick()
    handed_off.drain(IMPORTER, "history_importer")

    assert len(stored_ids()) == 95 and not import_state().running
    pages = [cursor for path, cursor in slow_lists if path == "/predictions"]
    # 20 and 30 were stored before it died; 40 was read but not stored, so it is read again.
    assert pages == ["0", "10", "20", "30", "40", "40", "50", "60", "70", "80", "90"]


def test_new_jobs_waiting_for_a_full_transaction_keep_their_page_the_saved_position(
    api, replicate, handed_off, slow_lists, lease_clock, poller_clock, monkeypatch
):
    from jobsync.services.polling import poll_tick

    history(replicate, 95)
    api.call("sync_jobs")  # pages 0 and 10
    real_import_page, pages_done = history_import.import_page, []

    def dies_on_the_second_page(client, observations, seen, new_jobs=None):
        if len(pages_done) == 1:
            # Page 20's ten new jobs wait for a fuller transaction: none of them is stored yet.
            assert new_jobs is not None and len(new_jobs) == 10
            raise SystemExit("the process was killed")
        pages_done.append(1)
        return real_import_page(client, observations, seen, new_jobs)

    with monkeypatch.context() as dying, pytest.raises(SystemExit):
        dying.setattr(history_import, "import_page", dies_on_the_second_page)
        dying.setattr(history_import, "_release", lambda provider, lease: None)
        handed_off.drain(IMPORTER, "history_importer")

    assert len(stored_ids()) == 20  # the sync's two pages only
    lease_clock.now += 61
    poll_tick()
    handed_off.drain(IMPORTER, "history_importer")

    assert len(stored_ids()) == 95 and not import_state().running
    assert import_state().imported == 95
    assert sum(wiring.job_store().counters().by_status.values()) == 95  # each job counted once
    pages = [cursor for path, cursor in slow_lists if path == "/predictions"]
    # Page 20 was read but its jobs not stored: the saved position was still page 20, so it is read again.
    assert pages == ["0", "10", "20", "30", "20", "30", "40", "50", "60", "70", "80", "90"]


def test_pages_of_new_jobs_are_written_ninety_nine_to_a_transaction(tables, replicate, monkeypatch):
    from jobsync.providers.registry import provider_client
    from jobsync.services.page_import import NewJobs, import_page
    from jobsync.store.jobs import JobStore

    transactions: list[int] = []
    create_together = JobStore.create_together

    def counted(self, jobs):
        transactions.append(len(jobs))
        return create_together(self, jobs)

    monkeypatch.setattr(JobStore, "create_together", counted)
    history(replicate, 300)
    client, seen, new_jobs = provider_client("replicate"), set(), NewJobs()
    observations = _listed(client, 300)

    created = sum(import_page(client, observations[n : n + 100], seen, new_jobs).created for n in (0, 100, 200))
    created += new_jobs.flush()

    assert created == 300 and len(stored_ids()) == 300
    assert transactions == [99, 99, 99, 3]  # page by page it was 99 + 1 three times: six transactions
    assert sum(wiring.job_store().counters().by_status.values()) == 300


def _listed(client, count: int) -> list:
    observations, handle = [], None
    while len(observations) < count:
        page = client.list_page("prediction", handle)
        observations += page.jobs
        handle = page.next_page
    return observations[:count]


def test_a_sync_that_reads_what_was_left_itself_tells_the_clients_the_import_is_done(
    api,
    replicate,
    handed_off,
    posted,  # noqa: F811
):
    sent, _ = posted
    assert connect("watcher") == 200
    history(replicate, 25)
    handed_off.refusing = True  # Lambda does not take the hand-off: the import waits, its lease free
    assert api.call("sync_jobs")[1]["history_complete"] is False
    # At the provider the 20 imported jobs are gone and 15 new ones came: two pages hold the whole list
    # (the 15 new ones, then the 5 the import had still to read).
    del replicate.predictions[5:]
    for n in range(15):
        replicate.add(replicate_job("succeeded", created_at=stamp(100 + n)))
    handed_off.refusing = False

    answer = api.call("sync_jobs")[1]

    assert (answer["synced"], answer["history_complete"]) == (20, True) and handed_off.calls == []
    progress = [message for message in sent["watcher"] if message["type"] == "sync_progress"]
    assert progress == [{"type": "sync_progress", "imported": 20, "done": True}]
