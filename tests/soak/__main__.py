"""`make soak`: the full soak (300 trainings over 100 s), its figures in one line; exit status 1 if a check failed.

python -m tests.soak [--jobs 300] [--window 100] [--state-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from local import lambda_runtime


def main() -> int:
    lambda_runtime.use_layer()  # jobsync, for the soak's checks (pytest puts it on the path itself)
    from tests.soak.soak import SoakPlan, run_soak

    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--window", type=float, default=100.0, help="seconds over which the trainings start")
    parser.add_argument("--state-dir", type=Path, default=None, help="kept afterwards (default: a temporary one)")
    args = parser.parse_args()
    workdir = args.state_dir or Path(tempfile.mkdtemp(prefix="jobsync-soak-"))
    result = run_soak(SoakPlan(jobs=args.jobs, window=args.window), workdir, log=lambda line: print(line, flush=True))
    for problem in result.problems:
        print(f"  {problem}")
    print(result.line)
    print(f"(the stack's and the simulator's logs: {workdir})")
    return 1 if result.problems else 0


if __name__ == "__main__":
    sys.exit(main())
