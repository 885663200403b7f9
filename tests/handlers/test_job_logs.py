"""GET /api/cloud/jobs/{job_id}/logs, the kept tail's bound, and no nulls while another reader holds the claim."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from jobsync import wiring
from jobsync.domain.logs import KEPT_LOG_BYTES
from jobsync.services import logs as log_reads
from tests.fakes.replicate import replicate_job


class ReaderClock:
    """services/logs.py's `time`: a fixed wall clock (every reader in the same 5 s interval). A sleep
    returns at once when `landed` is None; otherwise it returns once a tail has been kept (a condition,
    not a duration), so a waiting reader never races the read in flight however slow the machine is."""

    def __init__(self, landed: threading.Event | None = None) -> None:
        self.now = 1_800_000_000.0
        self.landed = landed
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
        if self.landed is not None:
            assert self.landed.wait(timeout=120), "the read in flight never kept its tail"

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture
def reader_clock(monkeypatch) -> ReaderClock:
    """Sleeps that return once a tail was kept (see ReaderClock)."""
    from jobsync.store.logs import LogStore

    landed = threading.Event()
    keep = LogStore.keep

    def keep_and_tell(self, *args, **kwargs):
        try:
            return keep(self, *args, **kwargs)
        finally:
            landed.set()

    monkeypatch.setattr(LogStore, "keep", keep_and_tell)
    clock = ReaderClock(landed)
    monkeypatch.setattr(log_reads, "time", clock)
    return clock


def _running(api, replicate, logs: str) -> str:
    job = replicate.add(replicate_job("processing", logs=logs))
    api.call("sync_jobs")
    return job["id"]


def _gets(replicate, job_id: str) -> int:
    return replicate.requests[("GET", f"/predictions/{job_id}")]


def test_a_running_jobs_logs_come_from_the_provider_then_from_the_kept_tail(api, replicate, reader_clock):
    job_id = _running(api, replicate, "\n".join(f"Step {n}/10" for n in range(1, 11)))

    status, first = api.call("job_logs", path={"job_id": job_id}, query={"tail": "3"})
    again = api.call("job_logs", path={"job_id": job_id}, query={"tail": "3"})[1]

    assert status == 200
    assert first == {
        "job_id": job_id,
        "lines": ["Step 8/10", "Step 9/10", "Step 10/10"],
        "truncated": True,
        "source": "provider",
    }
    assert again == {**first, "source": "kept"}  # within the 5 s interval: no second provider call
    assert _gets(replicate, job_id) == 1
    everything = api.call("job_logs", path={"job_id": job_id})[1]  # default tail: 200
    assert len(everything["lines"]) == 10 and everything["truncated"] is False


def test_after_the_end_the_kept_tail_is_served_when_the_provider_has_deleted_the_logs(api, replicate, reader_clock):
    job_id = _running(api, replicate, "Loading\nStep 5/5")
    replicate.update(job_id, status="succeeded", logs="Loading\nStep 5/5\nSaving checkpoint\nDone")
    assert api.call("job_logs", path={"job_id": job_id})[1]["source"] == "provider"  # the read that sees the end
    replicate.update(job_id, logs=None)  # an hour later Replicate removes the logs
    fetched = _gets(replicate, job_id)

    body = api.call("job_logs", path={"job_id": job_id}, query={"tail": "2"})[1]

    assert body == {"job_id": job_id, "lines": ["Saving checkpoint", "Done"], "truncated": True, "source": "kept"}
    assert _gets(replicate, job_id) == fetched  # an ended job never costs a provider call


def test_the_kept_tail_is_the_last_64_kib_of_whole_lines(api, replicate, reader_clock):
    lines = [f"line {n:05d} " + "x" * 50 for n in range(3000)]  # 186 KB
    job_id = _running(api, replicate, "\n".join(lines))
    api.call("job_logs", path={"job_id": job_id})
    replicate.update(job_id, status="succeeded")
    reader_clock.now += 10
    api.call("job_logs", path={"job_id": job_id})

    kept = wiring.log_store().kept(job_id)
    body = api.call("job_logs", path={"job_id": job_id}, query={"tail": "2000"})[1]

    assert kept is not None and kept.tail.has_older
    assert len(kept.text.encode()) <= KEPT_LOG_BYTES < len(kept.text.encode()) + len(lines[-1]) + 2
    assert list(kept.tail.lines) == lines[-len(kept.tail.lines) :]  # whole lines, the newest
    assert body["source"] == "kept" and body["truncated"] is True
    assert body["lines"] == lines[-len(kept.tail.lines) :]


@pytest.mark.parametrize("tail", ["0", "2001", "-1", "ten", "5.0", ""])
def test_a_tail_out_of_range_is_refused_and_asks_nobody(api, replicate, reader_clock, tail):
    job_id = _running(api, replicate, "Step 1/2")

    status, body = api.call("job_logs", path={"job_id": job_id}, query={"tail": tail})

    assert status == 400 and body["error"] == "invalid_input" and "tail" in body["message"]
    assert _gets(replicate, job_id) == 0 and wiring.log_store().kept(job_id) is None


def test_logs_of_an_unknown_job_are_404(api, replicate):
    status, body = api.call("job_logs", path={"job_id": "nosuchjob"})
    assert status == 404 and body["error"] == "job_not_found"


def test_the_answer_has_exactly_the_contracts_shape(api, replicate, reader_clock):
    from jobsync.api.models import JobLogsOut

    job_id = _running(api, replicate, "Step 1/2")
    body = api.call("job_logs", path={"job_id": job_id})[1]

    assert set(body) == {"job_id", "lines", "truncated", "source"}
    assert isinstance(body["lines"], list) and all(isinstance(line, str) for line in body["lines"])
    assert isinstance(body["truncated"], bool) and body["source"] in ("provider", "kept")
    JobLogsOut.model_validate(body)


# ---- no nulls for a running job while another request holds the log claim ----------------------


def test_fifty_concurrent_first_progress_requests_all_see_progress_and_cost_one_provider_call(
    api, replicate, reader_clock
):
    job_id = _running(api, replicate, "Warming up\nStep 40/100 - loss: 0.1")

    def ask(_: int) -> dict[str, Any]:
        status, body = api.call("inline_progress", path={"job_id": job_id})
        assert status == 200
        return body

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(ask, range(50)))

    assert [answer["progress"] for answer in answers] == [40.0] * 50
    assert {answer["stage"] for answer in answers} == {"Training"}
    assert _gets(replicate, job_id) == 1


def test_a_reader_serves_the_last_known_tail_at_once_while_another_holds_the_claim(api, replicate, reader_clock):
    job_id = _running(api, replicate, "Step 10/100")
    assert api.call("inline_progress", path={"job_id": job_id})[1]["progress"] == 10.0
    replicate.update(job_id, logs="Step 10/100\nStep 20/100")
    reader_clock.now += 6  # the kept tail is stale...
    assert wiring.log_store().claim_refresh(job_id, reader_clock.now, 5)  # ...and another reader is refreshing it

    body = api.call("inline_progress", path={"job_id": job_id})[1]

    assert body["progress"] == 10.0  # the last known tail, not nulls
    assert reader_clock.slept == [] and _gets(replicate, job_id) == 1


def test_a_reader_waits_only_so_long_for_a_read_that_never_lands(api, replicate, monkeypatch):
    clock = ReaderClock()  # sleeps return at once: nothing will land
    monkeypatch.setattr(log_reads, "time", clock)
    job_id = _running(api, replicate, "Step 10/100")
    assert wiring.log_store().claim_refresh(job_id, clock.now, 5)  # a reader that died mid-read

    body = api.call("inline_progress", path={"job_id": job_id})[1]

    assert body["progress"] is None
    assert log_reads.WAIT_FOR_READ_SECONDS <= sum(clock.slept) < log_reads.WAIT_FOR_READ_SECONDS + 0.5
    assert _gets(replicate, job_id) == 0
