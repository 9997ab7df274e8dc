"""The house plan, checked: the layout rules that keep the code findable (issue "One house plan").

- `lambdas/sparkscale/` holds at most 10 top-level modules beside its packages;
- no two modules under `lambdas/` define the same public class name;
- no function in the policy or the use cases is longer than 80 lines;
- only the use-case shell touches the lease; the tools (CLI, replay, demo) live outside `lambdas/`;
- of the tools, the Lambda asset carries the replay engine only (the weekly digest compares each cluster's
  week with the savings report's own code, not a second simulator): it runs on the standard library alone, and
  no handler but the digest's imports it (the hot handlers' cold start stays small).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from sparkscale_cdk.lambda_asset import replay_engine, stage_lambda_asset

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


def test_the_asset_carries_the_replay_engine_not_the_cli_demo_or_plots() -> None:
    engine = replay_engine()
    assert "sparkscale_tools.replay.savings" in engine
    assert "sparkscale_tools.replay.engine" in engine
    for left_out in ("cli", "demo", "replay.cli", "replay.outputs", "replay.progress", "replay.streaming"):
        assert f"sparkscale_tools.{left_out}" not in engine


_ENGINE_ALONE = """
import json, sys
from datetime import UTC, datetime, timedelta
sys.path.insert(0, sys.argv[1])
from sparkscale.config import Config
from sparkscale.policy.model import Market, Role
from sparkscale_tools.replay import savings
from sparkscale_tools.replay.cluster import ClusterSpec, GroupSpec
assert savings.__file__.startswith(sys.argv[1]), savings.__file__
t0 = datetime(2026, 3, 2, tzinfo=UTC)
steps = [t0 + timedelta(minutes=5 * k) for k in range(36)]
series = {
    "alloc": {t: (40 if k < 12 else 48 if k < 24 else 20) * 1024.0 for k, t in enumerate(steps)},
    "pending": {t: 10.0 if 12 <= k < 24 else 0.0 for k, t in enumerate(steps)},
    "calloc": {t: 10.0 for t in steps},
    "total": {t: 48 * 1024.0 for t in steps},
}
shape = ClusterSpec("j-ALONE", "alone", (
    GroupSpec("ig-core", "core", Role.CORE, Market.ON_DEMAND, "r5.xlarge", 32, 4, 0.252, 2),
    GroupSpec("ig-task", "task", Role.TASK, Market.SPOT, "r5.2xlarge", 64, 8, 0.2),
), "us-east-1a")
prices = (savings.PriceLine("ig-task", "r5.2xlarge", "SPOT", 0.2, "test"),)
records = [{"at": (t0 + timedelta(hours=1)).isoformat(), "is_action": True, "direction": "out",
            "targets": [{"group_id": "ig-task", "instance_type": "r5.2xlarge", "market": "SPOT",
                         "current": 0, "target": 4, "usd_per_hour_per_node": 0.2}]}]
r = savings.build_report(cluster_id="j-ALONE", records=records, series=series, end=t0 + timedelta(hours=3),
                         days=1, config=Config(), shape=shape, prices=prices)
third = sorted(m for m in sys.modules if m.split(".")[0] not in sys.stdlib_module_names
               and m.split(".")[0] not in ("sparkscale", "sparkscale_tools") and not m.startswith("_"))
print(json.dumps({"headline": r.headline(), "third_party": third}))
"""


def test_the_staged_replay_engine_runs_on_the_standard_library_alone(tmp_path: Path) -> None:
    """The staged asset, with no site-packages (-S) and no PYTHONPATH (-I): the report's replay runs and
    gives what the checkout's code gives. A module missing from the asset fails here, not in Lambda."""
    asset = stage_lambda_asset(tmp_path)
    out = subprocess.run(
        [sys.executable, "-S", "-I", "-c", _ENGINE_ALONE, str(asset)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        timeout=120,
    )
    got = json.loads(out.stdout)
    assert got["third_party"] == []
    here = subprocess.run(  # the same script on the checkout's packages
        [sys.executable, "-c", _ENGINE_ALONE, str(REPO)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": f"{LAMBDAS}{os.pathsep}{REPO / 'tools'}"},
        timeout=120,
    )
    assert got["headline"] == json.loads(here.stdout)["headline"]
    assert got["headline"].startswith("TASK nodes cost $1.60")  # 4 nodes for the last 2 hours at $0.20


def test_no_handler_but_the_digest_imports_the_replay() -> None:
    """Importing every handler module loads no `sparkscale_tools` module: the digest imports the replay on its
    first weekly comparison, so `handlers.alarm`'s cold start (<= 300 ms, bench_handler.py) is unchanged."""
    handlers = sorted(p.stem for p in (LAMBDAS / "handlers").glob("*.py") if p.stem != "__init__")
    assert {"alarm", "reconcile", "digest"} <= set(handlers)
    script = (
        "import importlib, sys\n"
        f"for h in {handlers!r}: importlib.import_module('handlers.' + h)\n"
        "print(sorted(m for m in sys.modules if m.startswith('sparkscale_tools')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": f"{LAMBDAS}{os.pathsep}{REPO / 'tools'}"},
        timeout=120,
    )
    assert out.stdout.strip() == "[]"
