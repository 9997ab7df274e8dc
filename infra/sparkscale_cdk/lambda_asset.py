"""The Lambda asset: the `handlers` and `sparkscale` packages side by side, from a checkout or an installed
wheel alike.

In a checkout they are lambdas/handlers and lambdas/sparkscale; the wheel carries the handlers as
sparkscale_cdk/_lambda_handlers (setup.py: a top-level `handlers` package would collide with other
distributions) and `sparkscale` is wherever it is imported from. Both are copied into a temporary folder that
CDK stages (copies again, into the cloud assembly) when the functions bind their code, so the asset, and its
hash, is the same files whichever way sparkscale was installed.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import sparkscale

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


def stage_lambda_asset(into: Path) -> Path:
    """Copy `handlers/` and `sparkscale/` into `into` (which must not hold them yet); returns `into`."""
    ignore = shutil.ignore_patterns(*IGNORED)
    shutil.copytree(handlers_dir(), into / "handlers", ignore=ignore)
    shutil.copytree(core_dir(), into / "sparkscale", ignore=ignore)
    return into


@contextmanager
def staged_lambda_asset() -> Iterator[Path]:
    """A staged asset folder for the functions to bind; removed on exit (CDK has copied it by then)."""
    with tempfile.TemporaryDirectory(prefix="sparkscale-lambda-") as tmp:
        yield stage_lambda_asset(Path(tmp))
