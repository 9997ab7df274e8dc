"""The README stays true: its configuration table is the schema's, and it shows the two commands."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from sparkscale.config import Config, config_table_markdown

README = Path(__file__).resolve().parents[1] / "README.md"


def _section(text: str, name: str) -> str:
    m = re.search(rf"<!-- section:{name} -->\n(.*?)<!-- /section:{name} -->", text, re.S)
    assert m, f"README has no section {name!r}"
    return m.group(1).strip()


def test_config_table_is_generated_from_the_schema() -> None:
    # Regenerate with: .venv/bin/sparkscale config table --write-readme
    assert _section(README.read_text(encoding="utf-8"), "config-table") == config_table_markdown()


def test_every_setting_is_documented() -> None:
    table = _section(README.read_text(encoding="utf-8"), "config-table")
    for f in fields(Config):
        assert f"| `{f.name}` |" in table, f"{f.name} missing from the README's configuration table"


def test_readme_shows_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text
    assert "make test" in text
