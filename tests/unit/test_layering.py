"""The layer's one-way data flow, checked on the imports: services and handlers see providers only through
the interface (`providers.base`) and the registry, never an implementation such as `providers.replicate`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INTERFACE = {"jobsync.providers", "jobsync.providers.base", "jobsync.providers.registry"}


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
            if node.module == "jobsync.providers":  # `from jobsync.providers import replicate`
                modules.update(f"jobsync.providers.{alias.name}" for alias in node.names)
    return modules


SOURCES = sorted([*(ROOT / "layers/jobsync/jobsync/services").glob("*.py"), *(ROOT / "functions").glob("*/app.py")])


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: str(path.relative_to(ROOT)))
def test_services_and_handlers_see_providers_only_through_the_interface(path):
    providers = {module for module in _imported_modules(path) if module.startswith("jobsync.providers")}
    assert providers <= INTERFACE, (
        f"{path.relative_to(ROOT)} imports a provider implementation: {providers - INTERFACE}"
    )


def test_the_check_sees_an_implementation_import(tmp_path):
    offender = tmp_path / "offender.py"
    offender.write_text("from jobsync.providers.replicate import observation_from\nfrom jobsync.providers import x\n")
    assert _imported_modules(offender) >= {"jobsync.providers.replicate", "jobsync.providers.x"}
