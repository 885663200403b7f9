"""The soak's Replicate: the simulator with hundreds of short trainings, failing a share of its answers.

    python -m tests.soak.simulator --port 8002 --token r8_soak --jobs 300 --window 100 --speed 20 \
        --fault-rate 0.2 --webhook-url http://127.0.0.1:8003/relay --webhook-secret whsec_...

runs in its own process, so that the stack can be killed and restarted around it while its story goes
on. The trainings are `ScenarioTraining`s like the built-in ones, started one after another over the
first `window` real seconds after the anchor; each runs for 0.5 to 7.6 real seconds at speed 20 and ends
succeeded, failed or canceled. Every answer is the simulator's own (`create_app`), faults included.
"""

from __future__ import annotations

import argparse
import logging
import random
from collections.abc import Sequence

from local.replicate_simulator import state as simulator_state
from local.replicate_simulator.app import create_app
from local.replicate_simulator.scenarios import ScenarioTraining
from local.replicate_simulator.state import FaultPlan, SimulatedReplicate

# Every kind but `timeout`, which holds an answer for 30 s: the soak is about what arrives, not about waiting.
FAULTS = ("429", "429-retry-after", "500", "502", "503", "504", "reset", "truncated")
# jobsync asks a provider 5 times (within about 2 s) before it answers 502 (the provider failed), which is
# right for an outage but not what the soak is about: at one answer in five failing, some request met five
# faults now and then. Never more than this many drawn faults on one URL within FAULT_WINDOW_SECONDS, so
# every fault is a passing one, however many syncs and ticks ask for the same page at once.
MAX_FAULTS_PER_URL = 3
FAULT_WINDOW_SECONDS = 30.0
OUTCOMES = ("succeeded",) * 8 + ("failed", "canceled")


def soak_trainings(count: int, window: float, speed: float, seed: int = 7) -> tuple[ScenarioTraining, ...]:
    """`count` trainings starting evenly over the first `window` real seconds after the anchor."""
    rng = random.Random(seed)
    trainings = []
    for index in range(count):
        style = "flux" if index % 2 else "simpletuner"
        steps = rng.randrange(30, 90)
        starts_at = (1.0 + window * index / max(1, count)) * speed  # scenario seconds
        outcome = OUTCOMES[index % len(OUTCOMES)]
        trainings.append(
            ScenarioTraining(
                key=f"soak-{index}",
                model="jobsync-soak/flux-lora" if style == "flux" else "jobsync-soak/sdxl-lora",
                log_style=style,
                steps=steps,
                steps_per_second=rng.uniform(1.5, 3.0),
                images=rng.randrange(4, 16),
                queue_seconds=rng.uniform(0.5, 3.0) * speed,
                outcome=outcome,
                starts_at=starts_at,
                stops_after=None if outcome == "succeeded" else rng.uniform(10.0, 20.0),
                nanosecond_timestamps=index % 3 == 0,
                config_name=f"soak-{index % 7}",
            )
        )
    return tuple(trainings)


def simulator(
    *, count: int, window: float, speed: float, token: str, webhook_secret: str, base_url: str, faults: FaultPlan
) -> SimulatedReplicate:
    """The simulator whose scripted trainings are the soak's (its history of old predictions stays)."""
    simulator_state.SCENARIO = soak_trainings(count, window, speed)  # what SimulatedReplicate plays
    sim = SimulatedReplicate(speed=speed, token=token, webhook_secret=webhook_secret, base_url=base_url, faults=faults)
    return sim


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m tests.soak.simulator", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--webhook-secret", required=True)
    parser.add_argument("--webhook-url", default=None)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--window", type=float, default=100.0, help="real seconds over which the trainings start")
    parser.add_argument("--speed", type=float, default=20.0)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--fault-seed", type=int, default=7)
    args = parser.parse_args(argv)
    sim = simulator(
        count=args.jobs,
        window=args.window,
        speed=args.speed,
        token=args.token,
        webhook_secret=args.webhook_secret,
        base_url=f"http://127.0.0.1:{args.port}/v1",
        faults=FaultPlan(
            rate=args.fault_rate,
            kinds=FAULTS,
            seed=args.fault_seed,
            most_per_url=MAX_FAULTS_PER_URL,
            per_url_seconds=FAULT_WINDOW_SECONDS,
        ),
    )
    logging.basicConfig(level=logging.WARNING)
    print(f"soak simulator on http://127.0.0.1:{args.port}/v1, anchor {sim.anchor:.3f}", flush=True)
    uvicorn.run(create_app(sim, args.webhook_url), host="127.0.0.1", port=args.port, log_level="error")


if __name__ == "__main__":
    main()
