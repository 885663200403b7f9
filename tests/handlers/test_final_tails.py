"""No ended job's log tail is dropped: request_tails marks it pending, the tail keeper keeps it (or records it gone)."""

from __future__ import annotations

import boto3
import pytest

from jobsync import wiring
from jobsync.config import get_settings
from jobsync.services import final_logs
from tests.fakes.replicate import replicate_job

TAIL_KEEPER = "jobsync-tail-keeper"
NOW = 1_800_000_000.0


def _handed_jobs(handed_off) -> list[list[str]]:
    """The jobs of each hand-off to the tail keeper so far, oldest first."""
    return [payload["job_ids"] for payload in handed_off.to(TAIL_KEEPER)]


@pytest.fixture
def keeper_env(monkeypatch, aws_env):
    monkeypatch.setenv("JOBSYNC_TAIL_KEEPER_FUNCTION", TAIL_KEEPER)
    wiring.reset()


def _ended_job(api, replicate, logs="Step 100/100\nSaving checkpoint\ndone"):
    job = replicate.add(replicate_job("processing", logs="Step 1/100"))
    api.call("sync_jobs")
    replicate.update(job["id"], status="succeeded", logs=logs, completed_at="2026-11-01T11:00:00.000000Z")
    return job["id"]


def _gets(replicate, job_id):
    return replicate.requests[("GET", f"/predictions/{job_id}")]


def test_a_requested_tail_is_pending_and_handed_to_the_tail_keeper(keeper_env, api, replicate, handed_off):
    job_id = _ended_job(api, replicate)

    final_logs.request_tails([job_id, job_id], clock=lambda: NOW)

    assert wiring.log_store().pending_final() == [job_id]
    assert handed_off.to(TAIL_KEEPER) == [{"job_ids": [job_id], "handed_off_at": NOW}]


def test_a_pending_tail_survives_a_failed_fetch_and_the_next_run_keeps_it(keeper_env, api, replicate, handed_off):
    job_id = _ended_job(api, replicate)
    handed_off.refusing = True  # the nudge is lost too: only DynamoDB remembers
    final_logs.request_tails([job_id])
    replicate.fail_next("GET", f"/predictions/{job_id}", *[503] * 10)

    first = final_logs.keep_final_tails(wiring.log_store().pending_final())

    assert first.failed == [job_id] and first.kept == []
    assert wiring.log_store().pending_final() == [job_id]
    assert wiring.log_store().final_state(job_id) is None
    replicate.failures.clear()

    second = final_logs.keep_final_tails(wiring.log_store().pending_final())

    assert second.kept == [job_id]
    assert wiring.log_store().pending_final() == []
    kept = wiring.log_store().kept(job_id)
    assert kept is not None and kept.final == "kept"
    assert kept.tail.lines == ("Step 100/100", "Saving checkpoint", "done")
    assert wiring.job_store().get(job_id).status.value == "completed"


def test_the_poller_tick_hands_off_what_is_still_pending(keeper_env, api, replicate, handed_off):
    job_id = _ended_job(api, replicate)
    handed_off.refusing = True
    final_logs.request_tails([job_id])
    handed_off.refusing = False

    assert final_logs.resume_pending() == 1
    assert _handed_jobs(handed_off) == [[job_id]]
    assert handed_off.drain(TAIL_KEEPER, "tail_keeper") == 1
    assert wiring.log_store().kept(job_id).final == "kept"
    assert final_logs.resume_pending() == 0


def test_logs_the_provider_no_longer_has_are_recorded_as_gone(keeper_env, api, replicate, handed_off):
    forgotten = _ended_job(api, replicate)
    removed = _ended_job(api, replicate, logs=None)
    replicate.predictions = [job for job in replicate.predictions if job["id"] != forgotten]
    final_logs.request_tails([forgotten, removed])

    report = final_logs.keep_final_tails(wiring.log_store().pending_final())

    assert sorted(report.gone) == sorted([forgotten, removed])
    assert wiring.log_store().final_state(forgotten) == "gone"
    assert wiring.log_store().final_state(removed) == "gone"
    assert wiring.log_store().pending_final() == []


def test_a_kept_tail_is_never_fetched_again(keeper_env, api, replicate, handed_off):
    job_id = _ended_job(api, replicate)
    final_logs.request_tails([job_id])
    final_logs.keep_final_tails([job_id])
    fetched = _gets(replicate, job_id)

    final_logs.request_tails([job_id])  # asked again (a replayed tick, a second sync)
    again = final_logs.keep_final_tails(wiring.log_store().pending_final())

    assert again.settled_before == [job_id]
    assert _gets(replicate, job_id) == fetched
    assert wiring.log_store().pending_final() == []


def test_a_leased_tail_is_not_fetched_by_a_second_run(keeper_env, api, replicate, handed_off):
    job_id = _ended_job(api, replicate)
    final_logs.request_tails([job_id])
    assert wiring.log_store().lease_final(job_id, now=wiring_now(), seconds=final_logs.LEASE_SECONDS) is not None
    fetched = _gets(replicate, job_id)

    report = final_logs.keep_final_tails([job_id])

    assert report.busy == [job_id] and _gets(replicate, job_id) == fetched
    assert wiring.log_store().pending_final() == [job_id]


def wiring_now() -> float:
    import time

    return time.time()


def test_the_poller_tick_itself_hands_pending_tails_to_the_tail_keeper(keeper_env, api, replicate, handed_off):
    from jobsync.services.polling import poll_tick

    job_id = _ended_job(api, replicate)
    handed_off.refusing = True  # the hand-off of the request that saw the job end was lost
    final_logs.request_tails([job_id])
    handed_off.refusing = False

    poll_tick()

    assert [job_id] in _handed_jobs(handed_off)


def test_a_tail_that_keeps_failing_is_given_up_as_gone_two_hours_after_its_first_try(
    keeper_env, api, replicate, handed_off
):
    job_id = _ended_job(api, replicate)
    final_logs.request_tails([job_id])
    replicate.fail_next("GET", f"/predictions/{job_id}", *[422] * 3)  # refused for this job alone
    start = 1_800_000_000.0

    assert final_logs.keep_final_tails([job_id], clock=lambda: start).failed == [job_id]
    later = start + final_logs.GIVE_UP_AFTER_SECONDS - 1
    assert final_logs.keep_final_tails([job_id], clock=lambda: later).failed == [job_id]
    fetched = _gets(replicate, job_id)
    given_up = final_logs.keep_final_tails([job_id], clock=lambda: start + final_logs.GIVE_UP_AFTER_SECONDS)

    assert given_up.gone == [job_id] and _gets(replicate, job_id) == fetched
    assert wiring.log_store().final_state(job_id) == "gone" and wiring.log_store().pending_final() == []


def test_the_tick_hands_off_again_only_tails_whose_hand_off_is_stale(keeper_env, api, replicate, handed_off):
    bound = get_settings().final_tail_resume_after_seconds
    stale, fresh = _ended_job(api, replicate), _ended_job(api, replicate)
    final_logs.request_tails([stale], clock=lambda: NOW)
    final_logs.request_tails([fresh], clock=lambda: NOW + 600)  # ended later: its tail keeper is at work
    handed_off.calls.clear()

    # Ticks inside the bound of both hand-offs hand nothing off again.
    assert final_logs.resume_pending(clock=lambda: NOW + 30) == 0
    assert final_logs.resume_pending(clock=lambda: NOW + bound - 60) == 0
    assert handed_off.to(TAIL_KEEPER) == []

    # Past the bound of the first hand-off only: the stale tail is handed off again, the fresh one not.
    later = NOW + bound + 60
    assert final_logs.resume_pending(clock=lambda: later) == 1
    assert handed_off.to(TAIL_KEEPER) == [{"job_ids": [stale], "handed_off_at": later}]
    # That hand-off is recorded in turn: the next tick leaves both alone, and both are still pending.
    assert final_logs.resume_pending(clock=lambda: later + 30) == 0
    assert wiring.log_store().pending_final() == sorted([fresh, stale])


def test_a_refused_hand_off_is_handed_off_at_the_next_tick(keeper_env, api, replicate, handed_off):
    job_id = _ended_job(api, replicate)
    handed_off.refusing = True
    final_logs.request_tails([job_id], clock=lambda: NOW)
    handed_off.refusing = False

    assert final_logs.resume_pending(clock=lambda: NOW + 30) == 1
    assert handed_off.to(TAIL_KEEPER) == [{"job_ids": [job_id], "handed_off_at": NOW + 30}]


def test_a_tail_the_tail_keeper_could_not_fetch_is_handed_off_at_the_next_tick(keeper_env, api, replicate, handed_off):
    job_id = _ended_job(api, replicate)
    final_logs.request_tails([job_id], clock=lambda: NOW)
    replicate.fail_next("GET", f"/predictions/{job_id}", *[503] * 10)
    (payload,) = handed_off.to(TAIL_KEEPER)

    report = final_logs.keep_final_tails(payload["job_ids"], clock=lambda: NOW + 5, handed_off_at=NOW)

    assert report.failed == [job_id]
    assert final_logs.resume_pending(clock=lambda: NOW + 30) == 1  # given back: not left to the bound
    replicate.failures.clear()
    assert handed_off.drain(TAIL_KEEPER, "tail_keeper") == 2  # the first hand-off, then the tick's
    assert wiring.log_store().kept(job_id).final == "kept" and wiring.log_store().pending_final() == []


def test_settled_tails_leave_no_hand_off_record_behind(keeper_env, api, replicate, handed_off):
    jobs = [_ended_job(api, replicate) for _ in range(3)]
    final_logs.request_tails(jobs, clock=lambda: NOW)

    assert handed_off.drain(TAIL_KEEPER, "tail_keeper") == 1

    state = boto3.resource("dynamodb").Table(get_settings().state_table)
    items = [state.get_item(Key={"pk": f"final-logs#pending#{shard}"}).get("Item") for shard in range(4)]
    assert [item for item in items if item and set(item) - {"pk"}] == []  # no job list, no hand-off minute
