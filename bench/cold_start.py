"""Cold start: each function's import against a boto3-only handler's, in fresh interpreters.

Each run is a new `python -I` process that puts the function's folder and the layer on sys.path (as
Lambda puts /var/task and /opt/python) and measures `import app`: its CPU time (time.process_time,
user + system), which is what an import costs, and its wall time. The CPU time is the figure: on a
machine shared with other work, wall time also counts the waits for a processor, which say nothing
about the code. The interpreter's own start-up is left out (it is the same for both).

The baseline is a handler that imports boto3 and makes one DynamoDB client at import, as AWS's
samples do. Runs go round-robin (the baseline, then every function, RUNS times, and the baseline
once more), two processes at a time, after the .pyc files are written, as a deployed package ships
them; each function's ratio is the median of its runs over the median of the baseline's (the least of
the runs was tried: one lucky run of the baseline then set every ratio, 1.4-1.5x where medians said 1.2x).
"""

from __future__ import annotations

import compileall
import os
import re
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from bench.harness import LAYER, ROOT

RUNS = 3
PARALLEL = 2
_IMPORT = (
    "import os, sys, time\n"
    "class NotInLambda:\n"
    "    blocked = frozenset(filter(None, os.environ.get('BENCH_NOT_IN_LAMBDA', '').split(',')))\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.partition('.')[0] in self.blocked:\n"
    "            raise ImportError(f'{name} is not in the Lambda runtime or the layer')\n"
    "sys.meta_path.insert(0, NotInLambda())\n"
    "wall, cpu = time.perf_counter(), time.process_time()\n"
    "sys.path[:0] = sys.argv[1:]\n"
    "import app\n"
    "print(time.process_time() - cpu, time.perf_counter() - wall)\n"
)
BOTO3_HANDLER = '''"""A boto3-only handler: boto3 and one DynamoDB client, made at import."""
import os

import boto3

client = boto3.client("dynamodb")


def lambda_handler(event, context):
    return client.get_item(TableName=os.environ["TABLE"], Key={"pk": {"S": event["id"]}}).get("Item")
'''
IMPORT_ONLY_HANDLER = "import boto3\n"


def functions() -> list[str]:
    return sorted(path.parent.name for path in (ROOT / "functions").glob("*/app.py"))


def _environment() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "TMPDIR")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update({"AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "POWERTOOLS_SERVICE_NAME": "jobsync"})
    env["BENCH_NOT_IN_LAMBDA"] = ",".join(not_in_lambda())
    return env


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1)).lower()


@lru_cache(maxsize=1)
def not_in_lambda() -> tuple[str, ...]:
    """Top-level modules of this virtualenv that a deployed function cannot import.

    A function has the runtime's boto3 and the layer (layers/jobsync/requirements.txt) with what they
    require, nothing else. This virtualenv also has the command line's typer and rich, the test tools
    and moto; httpx imports click and rich when it finds them (for its own command line), which no
    deployed function would pay. So the measured imports see what Lambda has.
    """
    wanted = ["boto3"]
    for line in (LAYER / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            wanted.append(_name(line))
    allowed: set[str] = set()
    while wanted:
        name = wanted.pop()
        if name in allowed:
            continue
        allowed.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        wanted += [
            _name(r) for r in requires if "extra ==" not in r.partition(";")[2].replace('"', "").replace("'", "")
        ]
    blocked = {
        module
        for module, distributions in metadata.packages_distributions().items()
        if module.isidentifier() and module != "jobsync" and not any(_name(d) in allowed for d in distributions)
    }
    return tuple(sorted(blocked))


def import_seconds(*paths: Path) -> tuple[float, float]:
    """CPU and wall seconds to `import app` with `paths` first on sys.path, in a fresh interpreter."""
    answer = subprocess.run(
        [sys.executable, "-I", "-c", _IMPORT, *map(str, paths)],
        env=_environment(),
        cwd=paths[0],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if answer.returncode != 0:
        raise RuntimeError(f"importing {paths[0]}/app.py failed: {answer.stderr.strip()[-500:]}")
    cpu, wall = answer.stdout.strip().splitlines()[-1].split()
    return float(cpu), float(wall)


def measure(runs: int = RUNS) -> dict[str, dict[str, float]]:
    """Function -> {"ratio", "cpu_ms", "wall_ms"} (medians); also "(boto3 handler)" and "(import boto3 only)"."""
    compileall.compile_dir(str(LAYER / "jobsync"), quiet=1)
    compileall.compile_dir(str(ROOT / "functions"), quiet=1)
    names = functions()
    with tempfile.TemporaryDirectory(prefix="jobsync-bench-") as folder:
        baseline, import_only = Path(folder) / "boto3_handler", Path(folder) / "import_only"
        for path, text in ((baseline, BOTO3_HANDLER), (import_only, IMPORT_ONLY_HANDLER)):
            path.mkdir()
            (path / "app.py").write_text(text)
        import_seconds(baseline)  # its .pyc
        # Round-robin: the baseline, then every function, RUNS times, and the baseline once more. Two
        # processes at a time (CPU time does not count the waits for a processor that this adds).
        runs_to_do: list[tuple[str, tuple[Path, ...]]] = []
        for _ in range(runs):
            runs_to_do.append(("(boto3 handler)", (baseline,)))
            runs_to_do += [(name, (ROOT / "functions" / name, LAYER)) for name in names]
        runs_to_do.append(("(boto3 handler)", (baseline,)))
        runs_to_do += [("(import boto3 only)", (import_only,))] * runs
        times: dict[str, list[tuple[float, float]]] = {}
        with ThreadPoolExecutor(PARALLEL) as pool:
            answers = pool.map(lambda run: import_seconds(*run[1]), runs_to_do)
            for (name, _), measured in zip(runs_to_do, answers, strict=True):
                times.setdefault(name, []).append(measured)
    results = {
        name: {
            "cpu_ms": 1000 * statistics.median(cpu for cpu, _ in runs_of),
            "wall_ms": 1000 * statistics.median(wall for _, wall in runs_of),
        }
        for name, runs_of in times.items()
    }
    base = results["(boto3 handler)"]["cpu_ms"]
    for name in names:
        results[name]["ratio"] = results[name]["cpu_ms"] / base
    return results
