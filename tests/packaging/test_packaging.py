"""What a `pip install` gets, checked without building anything (make wheel-check builds and installs the
wheel): the lock file pins every declared dependency within its range and every pin of requirements*.txt,
the licence is there, CI runs the wheel check."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
_PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s;\\]+)")


def _name(raw: str) -> str:
    return re.sub(r"[-_.]+", "-", raw.split("[", maxsplit=1)[0]).lower()


def _pins(path: Path) -> dict[str, set[str]]:
    """name -> versions pinned in `path` (a lock may pin one package per Python version)."""
    pins: dict[str, set[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _PIN.match(line.strip())
        if m:
            pins.setdefault(_name(m.group(1)), set()).add(m.group(2))
    return pins


LOCK = _pins(REPO / "requirements.lock")


def _declared() -> list[str]:
    project = PYPROJECT["project"]
    out = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        out += extra
    return out


@pytest.mark.parametrize("requirement", _declared())
def test_every_declared_dependency_is_locked_within_its_range(requirement: str) -> None:
    req = Requirement(requirement)
    versions = LOCK.get(_name(req.name))
    assert versions, f"{req.name} is not in requirements.lock: add it to requirements.txt and `make lock`"
    assert any(req.specifier.contains(v) for v in versions), (req, versions)


@pytest.mark.parametrize("source", ["requirements.txt", "requirements-dev.txt"])
def test_the_lock_is_up_to_date_with_the_pins(source: str) -> None:
    stale = {
        name: versions
        for name, versions in _pins(REPO / source).items()
        if not versions <= LOCK.get(name, set())
    }
    assert stale == {}, f"{source} pins what requirements.lock does not: run `make lock`"


def test_every_locked_package_has_hashes() -> None:
    text = (REPO / "requirements.lock").read_text(encoding="utf-8")
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[-1])
    unhashed = [b.split()[0] for b in blocks if "==" in b and "--hash=sha256:" not in b]
    assert unhashed == []


def test_the_extras_the_docs_name_exist() -> None:
    assert set(PYPROJECT["project"]["optional-dependencies"]) >= {"replay", "cdk", "demo"}


def test_the_licence_is_the_apache_2_text_the_metadata_names() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text
    assert "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_ci_runs_the_tests_then_the_wheel_check() -> None:
    steps = [
        line.strip()
        for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.strip().startswith("make ")
    ]
    assert steps == ["make test", "make wheel-check"]
