"""`make test` leaves out of its collection only modules it would not run anyway: gate modules, all of their tests."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _make_test_recipe() -> str:
    """The recipe of the Makefile's `test` target, its continued lines joined."""
    makefile = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    match = re.search(r"^test:[^\n]*\n((?:\t[^\n]*\n)+)", makefile, flags=re.MULTILINE)
    assert match, "the Makefile has no test target"
    return match.group(1)


def _module_marks(path: Path) -> set[str]:
    """The names of the marks of a module's `pytestmark` (read from its source: importing it is what is saved)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "pytestmark" for target in node.targets
        ):
            values = node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else [node.value]
            return {value.attr for value in values if isinstance(value, ast.Attribute)}
    return set()


def test_make_test_ignores_only_modules_whose_every_test_is_a_gate() -> None:
    recipe = _make_test_recipe()
    pytest_line = next(line for line in recipe.splitlines() if " -m pytest " in line)
    ignored = re.findall(r"--ignore=(\S+)", pytest_line)
    assert ignored == ["tests/e2e/test_fuzz.py"]  # a new one is added here on purpose, not by accident
    for path in ignored:
        assert "gate" in _module_marks(ROOT / path), f"{path} has tests make test would run: do not ignore it"
    # `-m 'not gate'` (pytest's default options) keeps the gates out of make test: the ignored modules would be
    # deselected anyway
    addopts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"]
    assert "-m 'not gate'" in addopts
    pytest_arguments = pytest_line.split(" -m pytest ", 1)[1].split()
    assert "-m" not in pytest_arguments, "make test's own -m would replace the default 'not gate'"


def test_module_marks_are_read_from_a_modules_pytestmark(tmp_path: Path) -> None:
    module = tmp_path / "test_example.py"
    module.write_text("import pytest\n\npytestmark = [pytest.mark.e2e, pytest.mark.gate]\n")
    assert _module_marks(module) == {"e2e", "gate"}
    module.write_text("import pytest\n\npytestmark = pytest.mark.e2e\n")
    assert _module_marks(module) == {"e2e"}
    module.write_text("import pytest\n\n\ndef test_x():\n    pass\n")
    assert _module_marks(module) == set()
