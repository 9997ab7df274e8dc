"""The house plan, checked: the layout rules that keep the code findable (issue "One house plan").

- `lambdas/sparkscale/` holds at most 10 top-level modules beside its packages;
- no two modules under `lambdas/` define the same public class name;
- no function in the policy or the use cases is longer than 80 lines;
- only the use-case shell touches the lease; the tools (CLI, replay, demo) live outside the Lambda asset.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAMBDAS = REPO / "lambdas"
CORE = LAMBDAS / "sparkscale"
MAX_TOP_LEVEL_MODULES = 10
MAX_FUNCTION_LINES = 80


def _modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_the_core_package_has_at_most_ten_top_level_modules() -> None:
    top = sorted(p.name for p in CORE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_no_two_modules_under_lambdas_define_the_same_public_class() -> None:
    where: dict[str, list[str]] = defaultdict(list)
    for path in _modules(LAMBDAS):
        for node in _tree(path).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                where[node.name].append(str(path.relative_to(LAMBDAS)))
    twice = {name: paths for name, paths in where.items() if len(paths) > 1}
    assert twice == {}


@pytest.mark.parametrize("package", ["policy", "usecases"])
def test_no_function_in_the_policy_or_the_use_cases_is_over_80_lines(package: str) -> None:
    long = []
    for path in _modules(CORE / package):
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.name}:{node.name} {lines} lines")
    assert long == []


def test_only_the_shell_acquires_or_releases_the_lease() -> None:
    callers = []
    for path in _modules(CORE / "usecases"):
        for node in ast.walk(_tree(path)):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in {"acquire_lease", "release_lease"}
                and path.name != "shell.py"
            ):
                callers.append(f"{path.name}:{node.lineno} {node.attr}")
    assert callers == []


def test_the_tools_are_outside_the_lambda_asset() -> None:
    assert not (CORE / "replay").exists()
    assert not (CORE / "demo").exists()
    assert not list(CORE.glob("cli*.py"))
    assert (REPO / "tools" / "sparkscale_tools" / "replay").is_dir()
