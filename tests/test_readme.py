"""The README and the docs stay true: the configuration page's table is the schema's, the README is short,
shows the two commands and links only to files that exist."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from sparkscale.config import Config, config_table_markdown

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
CONFIG_PAGE = REPO / "docs" / "configuration.md"
README_MAX_LINES = 250


def _section(text: str, name: str) -> str:
    m = re.search(rf"<!-- section:{name} -->\n(.*?)<!-- /section:{name} -->", text, re.S)
    assert m, f"no section {name!r}"
    return m.group(1).strip()


def test_config_table_is_generated_from_the_schema() -> None:
    # Regenerate with: .venv/bin/sparkscale config table --write
    assert _section(CONFIG_PAGE.read_text(encoding="utf-8"), "config-table") == config_table_markdown()


def test_every_setting_is_documented() -> None:
    table = _section(CONFIG_PAGE.read_text(encoding="utf-8"), "config-table")
    for f in fields(Config):
        assert f"| `{f.name}` |" in table, f"{f.name} missing from docs/configuration.md's table"


def test_readme_shows_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text
    assert "make test" in text


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; the rest belongs in docs/"


def test_readme_links_point_at_files() -> None:
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t and not t.startswith("mailto:")]
    assert local, "the README links to the docs"
    missing = [t for t in local if not (REPO / t).exists()]
    assert not missing, f"README links to missing files: {missing}"
