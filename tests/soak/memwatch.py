"""The local stack's memory over a long busy run: its RSS sampled every minute into a CSV file.

    python -m tests.soak.memwatch --minutes 60 --out /tmp/memwatch.csv

Starts `make run`'s stack (tests/soak/busy_stack.py: `python -m local.stack` whose built-in simulator
plays a training every few seconds, at JOBSYNC_SIMULATOR_SPEED=10) with JOBSYNC_WEBHOOK_URL pointing at
itself, so the simulator's signed webhooks flow into it, and drives it as dashboards do: a job list and the
metrics every 2 s, a running job's inline progress every 5 s, a sync every minute, and a WebSocket client
listening throughout. Every minute it appends one line to the CSV file: minute, the stack's RSS in MB
(the process and any children), the jobs stored, the requests made, the 5xx met, the WebSocket messages
heard and the webhooks applied. At the end it stops the stack with Ctrl-C, prints the series' summary and
exits 1 if the RSS reached the bound (300 MB) or any request met a 5xx.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import websockets

from tests.stack_process import PATIENCE_SECONDS, ROOT, free_port

TOKEN = "memwatch-token"
RSS_LIMIT_MB = 300.0
# A first start imports moto and restores nothing: seconds, but minutes at a load average of 20.
START_SECONDS = 600.0


def rss_mb(pid: int) -> float:
    """VmRSS of `pid` and of every process under it, in MB."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                total += next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), 0) / 1024
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        pending += [int(child) for child in children]
    return total


class Clients:
    """Dashboard-like clients: lists, metrics, inline progress, syncs and one WebSocket listener."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {TOKEN}"}
        self.answers: Counter[int] = Counter()  # status code -> count; 0: no answer
        self.messages = 0
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._dashboard, daemon=True),
            threading.Thread(target=self._syncs, daemon=True),
            threading.Thread(target=lambda: asyncio.run(self._listen()), daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def request(self, http: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        try:
            answer: httpx.Response | None = http.request(method, f"{self.url}{path}", headers=self.headers, **kwargs)
        except httpx.HTTPError:
            answer = None
        with self._lock:
            self.answers[answer.status_code if answer is not None else 0] += 1
        return answer

    def _dashboard(self) -> None:
        with httpx.Client(timeout=120) as http:
            tick = 0
            while not self.stop.wait(2.0):
                self.request(http, "GET", "/api/cloud/jobs", params={"limit": "50"})
                self.request(http, "GET", "/api/cloud/metrics")
                tick += 1
                if tick % 3 == 0:
                    running = self.request(http, "GET", "/api/cloud/jobs", params={"status": "running", "limit": "5"})
                    jobs = running.json()["jobs"] if running is not None and running.status_code == 200 else []
                    if jobs:
                        self.request(http, "GET", f"/api/cloud/jobs/{jobs[0]['job_id']}/inline-progress")

    def _syncs(self) -> None:
        with httpx.Client(timeout=120) as http:
            while True:
                self.request(http, "POST", "/api/cloud/jobs/sync")
                if self.stop.wait(60.0):
                    return

    async def _listen(self) -> None:
        ws_url = self.url.replace("http://", "ws://") + f"/live?token={TOKEN}"
        while not self.stop.is_set():
            try:
                async with websockets.connect(ws_url, open_timeout=PATIENCE_SECONDS) as socket:
                    while not self.stop.is_set():
                        try:
                            await asyncio.wait_for(socket.recv(), timeout=1.0)
                        except TimeoutError:
                            continue
                        self.messages += 1
            except (OSError, websockets.WebSocketException):
                await asyncio.sleep(1.0)  # dropped: connect again, as the dashboard does


def webhooks_applied(state_dir: Path) -> int:
    """Webhooks the stack applied so far, from the functions' metric lines (`WebhooksApplied`)."""
    try:
        with (state_dir / "simulator" / "metrics.log").open() as lines:
            return sum('"WebhooksApplied"' in line for line in lines)
    except OSError:
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak.memwatch", description=__doc__)
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--out", type=Path, default=Path("/tmp/memwatch.csv"))
    parser.add_argument("--jobs-per-minute", type=int, default=12, help="trainings the simulator starts a minute")
    parser.add_argument("--state-dir", type=Path, default=None, help="default: a temporary one")
    args = parser.parse_args()
    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="jobsync-memwatch-"))
    state_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "REPLICATE_", "JOBSYNC_"))}
    env.update(
        JOBSYNC_PORT=str(port),
        JOBSYNC_API_TOKEN=TOKEN,
        JOBSYNC_STATE_DIR=str(state_dir),
        JOBSYNC_SIMULATOR_SPEED="10",
        JOBSYNC_WEBHOOK_URL=f"{url}/api/webhooks/replicate",
    )
    window = args.minutes * 60.0
    log = (state_dir / "stack.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.soak.busy_stack",
            f"--jobs={args.jobs_per_minute * args.minutes}",
            f"--window={window}",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            print(f"the stack did not start; its log: {state_dir / 'stack.log'}", file=sys.stderr)
            process.kill()
            return 1
        time.sleep(0.5)

    clients = Clients(url)
    clients.start()
    began = time.monotonic()
    series: list[float] = []
    with args.out.open("w") as out:
        out.write("minute,rss_mb,jobs_stored,requests,server_errors,ws_messages,webhooks_applied\n")
        for minute in range(args.minutes + 1):
            time.sleep(max(0.0, began + 60.0 * minute - time.monotonic()))
            rss = rss_mb(process.pid)
            series.append(rss)
            try:
                metrics = httpx.get(f"{url}/api/cloud/metrics", headers=clients.headers, timeout=120).json()
                jobs = metrics["job_count"]
            except (httpx.HTTPError, ValueError, KeyError):
                jobs = -1
            answers = clients.answers.copy()
            errors = sum(count for code, count in answers.items() if code >= 500 or code == 0)
            line = (
                f"{minute},{rss:.1f},{jobs},{sum(answers.values())},{errors},{clients.messages},"
                f"{webhooks_applied(state_dir)}"
            )
            out.write(line + "\n")
            out.flush()
            print(line, flush=True)
    clients.close()
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=PATIENCE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
    answers = clients.answers
    errors = sum(count for code, count in answers.items() if code >= 500 or code == 0)
    summary = {
        "minutes": args.minutes,
        "rss_mb": {"first": series[0], "min": min(series), "max": max(series), "last": series[-1]},
        "answers": dict(answers),
        "ws_messages": clients.messages,
        "webhooks_applied": webhooks_applied(state_dir),
        "csv": str(args.out),
        "state_dir": str(state_dir),
    }
    print(json.dumps(summary))
    return 1 if max(series) >= RSS_LIMIT_MB or errors else 0


if __name__ == "__main__":
    sys.exit(main())
