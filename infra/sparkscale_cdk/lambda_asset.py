"""The Lambda asset: the `handlers` and `sparkscale` packages side by side, from a checkout or an installed
wheel alike, and the replay engine the weekly digest runs.

In a checkout they are lambdas/handlers and lambdas/sparkscale; the wheel carries the handlers as
sparkscale_cdk/_lambda_handlers (setup.py: a top-level `handlers` package would collide with other
distributions) and `sparkscale` is wherever it is imported from. Both are copied into a temporary folder that
CDK stages (copies again, into the cloud assembly) when the functions bind their code, so the asset, and its
hash, is the same files whichever way sparkscale was installed.

The replay engine: the digest's weekly section compares each cluster's week with EMR's rules, static peak and
the oracle with the savings report's own code (`sparkscale_tools.replay.savings`, docs/savings-report.md), so
that module and the `sparkscale_tools` modules it imports, found by reading their imports (`replay_engine`),
are staged as `sparkscale_tools/` beside the other two: about a dozen stdlib-only modules, without the CLI,
the demo, the plots or the streaming replay. Only the digest handler imports them, on its first comparison.
"""

from __future__ import annotations

import ast
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import sparkscale
import sparkscale_tools

PACKAGE_DIR: Final = Path(__file__).resolve().parent
# Never shipped to Lambda: caches, packaging metadata and the agent's bootstrap files (EMR nodes get those).
IGNORED: Final = ("__pycache__", "*.pyc", "*.egg-info", "_bootstrap", ".mypy_cache", ".pytest_cache")


def handlers_dir() -> Path:
    """The handlers package: installed next to this module, else the checkout's lambdas/handlers."""
    installed = PACKAGE_DIR / "_lambda_handlers"
    return installed if installed.is_dir() else PACKAGE_DIR.parents[1] / "lambdas" / "handlers"


def core_dir() -> Path:
    """The `sparkscale` package the construct itself imports (the code it deploys is the code it checked)."""
    return Path(sparkscale.__file__).resolve().parent


TOOLS_PACKAGE: Final = "sparkscale_tools"
REPLAY_ENTRY: Final = "sparkscale_tools.replay.savings"  # what the digest's weekly section imports


def tools_dir() -> Path:
    return Path(sparkscale_tools.__file__).resolve().parent


def _module_file(module: str) -> Path:
    return tools_dir().joinpath(*module.split(".")[1:]).with_suffix(".py")


def replay_engine(entry: str = REPLAY_ENTRY) -> tuple[str, ...]:
    """`entry` and every `sparkscale_tools` module it imports, directly or not (imports inside functions
    too: a lazy import still runs in Lambda), by reading their source; sorted dotted names."""
    seen: set[str] = set()
    todo = [entry]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        tree = ast.parse(_module_file(module).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            todo += [n for n in names if n.startswith(TOOLS_PACKAGE + ".") and _module_file(n).is_file()]
    return tuple(sorted(seen))


def stage_replay_engine(into: Path) -> None:
    """Copy the replay engine's modules, with the `__init__.py` of each package on their way, under `into`."""
    for module in replay_engine():
        parts = module.split(".")
        for depth in range(1, len(parts)):  # the packages: sparkscale_tools, sparkscale_tools.replay
            init = tools_dir().joinpath(*parts[1:depth], "__init__.py")
            target = into.joinpath(*parts[:depth], "__init__.py")
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(init, target)
        shutil.copyfile(_module_file(module), into.joinpath(*parts).with_suffix(".py"))


def stage_lambda_asset(into: Path) -> Path:
    """Copy `handlers/`, `sparkscale/` and the replay engine (`sparkscale_tools/`, in part) into `into`
    (which must not hold them yet); returns `into`."""
    ignore = shutil.ignore_patterns(*IGNORED)
    shutil.copytree(handlers_dir(), into / "handlers", ignore=ignore)
    shutil.copytree(core_dir(), into / "sparkscale", ignore=ignore)
    stage_replay_engine(into)
    return into


@contextmanager
def staged_lambda_asset() -> Iterator[Path]:
    """A staged asset folder for the functions to bind; removed on exit (CDK has copied it by then)."""
    with tempfile.TemporaryDirectory(prefix="sparkscale-lambda-") as tmp:
        yield stage_lambda_asset(Path(tmp))
