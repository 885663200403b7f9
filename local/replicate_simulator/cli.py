"""Run the simulator on its own, under uvicorn (the local stack starts it in-process instead).

    python -m local.replicate_simulator --port 8002 --token r8_local [--anchor EPOCH] [--speed 10]
        [--fault-rate 0.2 --faults 429,503,timeout,reset,truncated --fault-seed 7]

with `layers/jobsync` on the path.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from local.replicate_simulator.app import create_app
from local.replicate_simulator.state import DEFAULT_SEED, FAULT_KINDS, FaultPlan, SimulatedReplicate

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local.replicate_simulator",
        description="A Replicate API simulator for the local stack: scripted trainings, history, webhooks.",
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--token", required=True, help="the API token clients must send")
    parser.add_argument("--anchor", type=float, default=None, help="scenario time zero, epoch seconds (default: now)")
    parser.add_argument("--speed", type=float, default=1.0, help="play the scenario this many times faster")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--webhook-url", default=None, help="POST signed webhooks for training updates here")
    parser.add_argument("--webhook-secret", default=None, help="whsec_... (default: derived from the seed)")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests that meet a fault (0 to 1)")
    parser.add_argument(
        "--faults",
        default=",".join(FAULT_KINDS),
        help="comma-separated fault kinds (default: %(default)s)",
    )
    parser.add_argument("--fault-seed", type=int, default=None, help="seed of the fault draws (default: --seed)")
    parser.add_argument("--log-level", default="warning")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    parser = _parser()
    args = parser.parse_args(argv)
    try:
        faults = FaultPlan(
            rate=args.fault_rate, kinds=tuple(kind for kind in args.faults.split(",") if kind), seed=args.fault_seed
        )
    except ValueError as exc:
        parser.error(str(exc))
    sim = SimulatedReplicate(
        anchor=args.anchor,
        speed=args.speed,
        token=args.token,
        seed=args.seed,
        webhook_secret=args.webhook_secret,
        base_url=f"http://{args.host}:{args.port}/v1",
        faults=faults,
    )
    logging.basicConfig(level=args.log_level.upper())
    log.warning(
        "Replicate simulator on http://%s:%s/v1 (anchor %.3f, speed %g, webhooks %s, faults %g)",
        args.host,
        args.port,
        sim.anchor,
        sim.speed,
        args.webhook_url or "off",
        faults.rate,
    )
    uvicorn.run(create_app(sim, args.webhook_url), host=args.host, port=args.port, log_level=args.log_level)
