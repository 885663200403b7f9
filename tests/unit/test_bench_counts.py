"""The quick version of `make bench`: what the poller, a list page and inline progress ask for, counted.

Small worlds, no latency, nothing timed: only counts, which do not depend on the machine. Each
ceiling is what today's code does at this scale; a change that makes the code ask the provider or
DynamoDB for more fails here (lower a ceiling when the code gets better). The bench's own doubles
are checked on the way: moto's answers written the fast way must equal moto's own.
"""

from __future__ import annotations

import pytest

from bench import figures
from bench.harness import Scenario
from bench.provider import history_world
from tests.conftest import FrozenClock

# The bench's fake provider pages hold 10 jobs here (100 at Replicate): 100 active jobs are 10 pages.
ACTIVE, STARTED, ENDED, PAGE = 100, 5, 5, 10


def quick_scenario(env: dict[str, str] | None = None) -> Scenario:
    """A small world, no latency, moto's fast answers checked against its own; the process's one boto3 session;
    invocations whose deadlines do not move (a sync under load stopped after its first page at the 1 s it
    gives itself to answer, and the counts changed with the machine's speed)."""
    return Scenario(
        provider_latency=0.0,
        modelled=False,
        page_size=PAGE,
        check_answers=True,
        shared_session=True,
        env=env,
        invocation_time=FrozenClock(),
    )


@pytest.fixture
def bench():
    with quick_scenario() as scenario:
        yield scenario


@pytest.fixture
def bench_handing_off():
    """A bench whose hand-offs to the tail keeper are queued, for figures.run_tail_keeper to play."""
    env = figures.TAIL_KEEPER_ENV
    with quick_scenario(env) as scenario:
        with figures.handing_off() as hand_offs:
            yield scenario, hand_offs


def test_a_tick_reads_the_lists_and_hands_the_final_logs_to_the_background(bench_handing_off):
    bench, hand_offs = bench_handing_off
    world = figures.stored_world(bench, ACTIVE, started=STARTED, ended=ENDED)

    tick = figures.tick(bench)

    assert figures.applied(bench, world) == STARTED + ENDED
    assert tick.provider == {"list": ACTIVE // PAGE}  # every active job is in the first pages; no GET
    assert figures.ended_without_tail(bench, world) == 0  # each ended job's tail pending
    # the 10 changes in one transaction, the pending tails (one write per shard touched, 4 shards), the outcome
    assert tick.counts.write_requests <= 1 + 4 + 1
    keeper = figures.run_tail_keeper(bench, hand_offs)
    assert keeper.provider == {"get": ENDED}  # then one GET per ended job, in the background
    assert figures.kept(bench, world) == (ENDED, ENDED)


def test_the_next_tick_leaves_the_tails_a_tail_keeper_was_just_handed_alone(bench_handing_off):
    bench, hand_offs = bench_handing_off
    figures.stored_world(bench, ACTIVE, started=STARTED, ended=ENDED)
    figures.tick(bench)
    handed = [payload["job_ids"] for name, payload in hand_offs.waiting if name == figures.TAIL_KEEPER_FUNCTION]
    assert sum(map(len, handed)) == ENDED

    second = figures.tick(bench)  # the tail keeper has not run yet: its hand-off is in flight

    assert len(hand_offs.waiting) == len(handed)  # nothing handed off again (every tick did, before)
    assert second.counts.write_requests == 0


def test_sync_active_answers_with_the_listed_state_and_keeps_every_tail_afterwards(bench_handing_off):
    bench, hand_offs = bench_handing_off
    ended = 30
    world = figures.stored_world(bench, ACTIVE, started=0, ended=ended)

    answer = figures._sync_active(bench)

    assert answer.provider == {"list": ACTIVE // PAGE}  # no job fetched on its own before the answer
    assert figures.ended_without_tail(bench, world) == 0
    assert answer.counts.write_requests <= 1 + 4  # the 30 changes in one transaction; pending tails: 4 shards
    assert figures.applied(bench, world) == ended
    keeper = figures.run_tail_keeper(bench, hand_offs)
    assert keeper.provider == {"get": ended}
    assert figures.kept(bench, world) == (ended, ended)


def test_an_idle_tick_writes_nothing(bench):
    figures.stored_world(bench, ACTIVE, started=STARTED, ended=ENDED)
    figures.tick(bench)

    idle = figures.tick(bench)

    assert idle.counts.write_requests == 0
    assert idle.reads <= ACTIVE // PAGE
    assert idle.provider.get("get", 0) == 0


def test_the_per_job_baseline_asks_once_per_job(bench):
    world = figures.stored_world(bench, ACTIVE, started=STARTED, ended=ENDED)

    with figures.measured(bench) as baseline:
        figures.per_job_refresh()

    assert baseline.provider == {"get": ACTIVE}
    assert figures.applied(bench, world) == STARTED + ENDED


def test_the_sampled_baseline_scales_to_one_get_per_job(bench):
    world = figures.stored_world(bench, ACTIVE, started=STARTED, ended=ENDED)

    _, requests = figures.sampled_per_job_refresh(bench, world)

    assert requests == ACTIVE


def test_a_page_reads_at_most_one_item_more_than_it_shows(bench):
    figures.stored_world(bench, 120, started=0, ended=0)

    pages = figures.list_pages(bench, limit=PAGE)

    assert sum(page["jobs"] == PAGE for page in pages) >= 10  # full pages, first and second, of most filters
    assert max(page["items_read"] for page in pages) <= PAGE + 1


def test_inline_progress_asks_the_provider_once_per_job_per_interval(bench):
    ids = figures.running_jobs(bench, 3)

    statuses = figures.progress_calls(bench, ids, rounds=2, clients=6, slots=3, threads=4)

    assert statuses == [200] * (2 * 6 * 3)
    assert all(bench.provider.gets[job] <= 2 for job in ids)  # two intervals: at most one GET each


def test_a_first_sync_answers_after_its_first_pages_and_the_background_import_reads_every_other_page_once():
    history, pages_per_list = 300, 15  # 150 jobs a list, pages of 10
    env = {"JOBSYNC_HISTORY_IMPORTER_FUNCTION": figures.IMPORTER_FUNCTION}
    with quick_scenario(env) as bench:
        history_world(bench.provider, history)
        sync = figures.sync_then_import(bench)

    assert sync.status == 200 and sync.body["history_complete"] is False
    assert sync.press.provider == {"list": 4}  # the first two pages of each list
    assert sync.import_done and sync.imported == history
    assert len(sync.importer_runs) == 1  # no deadline met at this size: one invocation
    assert sum(run.provider.get("list", 0) for run in sync.importer_runs) == 2 * pages_per_list - 4
    # New jobs are written 99 to a transaction across pages (pages of 10 here, of 100 at Replicate). The
    # press: one transaction per list (its two pages) and the import's item. The importer: a transaction
    # per two pages of 10 (13 pages a list: 7), the import's cursor after each page, taking the lease
    # and giving it back.
    assert sync.press.counts.write_requests <= 2 + 1
    assert sum(run.counts.write_requests for run in sync.importer_runs) <= 14 + 26 + 2


def test_a_fan_out_reads_the_connections_once_and_posts_once_to_each(bench):
    figures.open_sockets(bench, 30)

    fanout = figures.broadcast_one_change(bench)

    assert fanout.result == {"changes": 1, "sent": 30, "gone": 0, "failed": 0}
    assert fanout.counts.posts == 30
    assert fanout.counts.calls == {"Query": 1}  # one page of the connections; nothing written


def test_concurrent_writers_each_write_once_and_the_sharded_counters_stay_exact():
    # How many meet depends on timing (the bench's counter_conflicts measures it); these counts do not.
    writers = figures.concurrent_writers(10)

    assert writers.failed == 0 and writers.exact
    assert (
        writers.sent == 10 + writers.refused
    )  # one transaction a writer (its job and a counter shard), resent if refused
