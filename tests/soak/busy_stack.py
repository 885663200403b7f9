"""`make run`'s stack with its built-in simulator kept busy: `python -m local.stack`, with more trainings.

    python -m tests.soak.busy_stack --jobs 720 --window 3600 [local.stack's own arguments...]

The built-in simulator plays `scenarios.SCENARIO` (a handful of trainings) and then has nothing left to
do. For a memory measurement over an hour, this runs the same stack in the same process, whose simulator
plays the soak's trainings instead: `jobs` of them started evenly over `window` real seconds, each running
for seconds and ending succeeded, failed or canceled. Everything else is `python -m local.stack`.
"""

from __future__ import annotations

import argparse
import os
import sys

from local import lambda_runtime, stack


def main() -> int:
    lambda_runtime.use_layer()  # jobsync, which the simulator imports (local.stack puts it on the path later)
    from local.replicate_simulator import state as simulator_state
    from tests.soak.simulator import soak_trainings

    parser = argparse.ArgumentParser(prog="python -m tests.soak.busy_stack", description=__doc__)
    parser.add_argument("--jobs", type=int, default=720)
    parser.add_argument("--window", type=float, default=3600.0, help="real seconds over which the trainings start")
    args, rest = parser.parse_known_args()
    speed = float(os.environ.get("JOBSYNC_SIMULATOR_SPEED", "1"))
    simulator_state.SCENARIO = soak_trainings(args.jobs, args.window, speed)  # what the simulator plays
    return stack.main(rest)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # as local.stack does: skip the interpreter's teardown
