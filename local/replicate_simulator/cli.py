"""Run the simulator on its own, under uvicorn (the local stack starts it in-process instead).

    python -m local.replicate_simulator --port 8002 --token r8_local [--anchor EPOCH] [--speed 10]

with `layers/jobsync` on the path.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from local.replicate_simulator.app import create_app
from local.replicate_simulator.state import DEFAULT_SEED, SimulatedReplicate

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
    parser.add_argument("--log-level", default="warning")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    args = _parser().parse_args(argv)
    sim = SimulatedReplicate(
        anchor=args.anchor,
        speed=args.speed,
        token=args.token,
        seed=args.seed,
        webhook_secret=args.webhook_secret,
        base_url=f"http://{args.host}:{args.port}/v1",
    )
    logging.basicConfig(level=args.log_level.upper())
    log.warning(
        "Replicate simulator on http://%s:%s/v1 (anchor %.3f, speed %g, webhooks %s)",
        args.host,
        args.port,
        sim.anchor,
        sim.speed,
        args.webhook_url or "off",
    )
    uvicorn.run(create_app(sim, args.webhook_url), host=args.host, port=args.port, log_level=args.log_level)
