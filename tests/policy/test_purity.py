"""The policy package is pure: no AWS SDK, no environment, no clock, no logging, no randomness."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import sparkscale.policy

POLICY_DIR = Path(sparkscale.policy.__file__).parent
BANNED_MODULES = {"boto3", "botocore", "os", "time", "logging", "random"}
BANNED_CALLS = {"now", "utcnow", "today"}  # datetime.now(), datetime.utcnow(), date.today(), ...
MODULES = sorted(POLICY_DIR.rglob("*.py"))


def violations(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in BANNED_MODULES]
        elif isinstance(node, ast.ImportFrom):
            root = (node.module or "").split(".")[0]
            if root in BANNED_MODULES:
                found.append(f"from {node.module} import ...")
            if root == "datetime" and any(a.name in BANNED_CALLS for a in node.names):
                found.append(f"from datetime import {[a.name for a in node.names]}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in BANNED_CALLS
        ):
            found.append(f"call .{node.func.attr}() at line {node.lineno}")
        elif isinstance(node, ast.Name) and node.id == "__import__":
            found.append(f"__import__ at line {node.lineno}")
    return found


def test_the_policy_package_has_modules():
    assert {p.name for p in MODULES} >= {"__init__.py", "model.py", "decide.py", "planner.py", "state.py"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_policy_module_is_pure(path):
    assert violations(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "source",
    [
        "import boto3",
        "import os.path",
        "from botocore.exceptions import ClientError",
        "from time import monotonic",
        "import logging",
        "import random",
        "from datetime import datetime\nx = datetime.now()",
        "import datetime\nx = datetime.datetime.utcnow()",
        "from datetime import date\nx = date.today()",
        "from os import environ",
        "m = __import__('os')",
    ],
)
def test_the_checker_catches(source):
    assert violations(source)
