"""`sparkscale config check FILE` / `config schema` / `config table`: validate settings, print their schema.

check: FILE is a settings file (the JSON object `--config FILE` takes) or a CDK app's cdk.json (an object
with "context"; its "sparkscale", "sparkscale:features", "sparkscale:stackName" and
"sparkscale:emrInstanceRoleName" keys are validated with every rule `cdk synth` applies). Prints the
settings with the defaults filled in; a bad setting is one line, exit 2.
schema: the JSON Schema of a settings file, or (--cdk-json) of a cdk.json, for editors (docs/install.md).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Final

from sparkscale.config import config_json_schema, config_table_markdown

from sparkscale_tools.cli.conventions import CliError

SCHEMA_DRAFT: Final = "https://json-schema.org/draft/2020-12/schema"

# The docs page that holds the generated table (tests/test_docs.py keeps it equal to the schema).
CONFIG_PAGE: Final = "docs/configuration.md"


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "config", help="validate settings (a settings file or a cdk.json) or print their schema"
    )
    csub = p.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = csub.add_parser(
        "check",
        help="validate a settings file or a cdk.json and print the settings with defaults filled in",
    )
    check.add_argument("file", help="a settings JSON file, or a CDK app's cdk.json")
    check.set_defaults(func=_check)
    schema = csub.add_parser("schema", help="print the settings' JSON Schema (for editors)")
    schema.add_argument(
        "--cdk-json", action="store_true", help="the schema of a whole cdk.json (settings under context)"
    )
    schema.set_defaults(func=_schema)
    table = csub.add_parser("table", help="print the configuration table (Markdown)")
    table.add_argument(
        "--write",
        metavar="PAGE",
        nargs="?",
        const=CONFIG_PAGE,
        default=None,
        help=f"replace the table between the page's config-table markers instead of printing "
        f"(default page: {CONFIG_PAGE})",
    )
    table.set_defaults(func=_table)


def _check(args: argparse.Namespace) -> int:
    from sparkscale.config import Config  # noqa: PLC0415

    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise CliError(f"{path}: not JSON: {exc}") from None
    if isinstance(doc, dict) and "context" in doc:
        print(json.dumps(_check_cdk_json(doc, path), indent=2, sort_keys=True))
        return 0
    if not isinstance(doc, dict):
        raise CliError(f"{path}: must be a JSON object")
    print(Config.from_mapping(doc, source=str(path)).to_json())
    return 0


def _check_cdk_json(doc: dict[str, Any], path: Path) -> dict[str, Any]:
    """The stack's own reading of cdk.json's context (`StackSettings.from_context`); ConfigErrors name
    cdk.json."""
    from sparkscale.config import CONTEXT_KEY, ConfigError  # noqa: PLC0415
    from sparkscale_cdk import settings as st  # noqa: PLC0415 - no aws_cdk import in settings

    context = doc["context"]
    if not isinstance(context, dict):
        raise CliError(f'{path}: "context" must be an object')
    try:
        s = st.StackSettings.from_context(context.get)
    except ConfigError as exc:
        raise CliError(f"{path}: {exc}") from None
    return {
        CONTEXT_KEY: json.loads(s.config.to_json()),
        st.FEATURES_KEY: asdict(s.features),
        st.STACK_NAME_KEY: s.stack_name,
        st.EMR_INSTANCE_ROLE_KEY: s.emr_instance_role_name,
    }


def cdk_json_schema() -> dict[str, Any]:
    """A cdk.json whose context holds sparkscale's keys (other keys of the file are left alone)."""
    from sparkscale.config import CONTEXT_KEY  # noqa: PLC0415
    from sparkscale_cdk import settings as st  # noqa: PLC0415

    settings = {k: v for k, v in config_json_schema().items() if k != "$schema"}
    defaults = st.Features()
    features = {
        f.name: {"type": "boolean", "default": getattr(defaults, f.name)} for f in fields(st.Features)
    }
    return {
        "$schema": SCHEMA_DRAFT,
        "title": "cdk.json of a sparkscale app",
        "type": "object",
        "properties": {
            "context": {
                "type": "object",
                "properties": {
                    CONTEXT_KEY: settings,
                    st.FEATURES_KEY: {
                        "description": "Feature flags: whole parts of the stack on or off.",
                        "type": "object",
                        "properties": features,
                        "additionalProperties": False,
                    },
                    st.STACK_NAME_KEY: {
                        "description": "The CloudFormation stack name.",
                        "type": "string",
                        "pattern": st.STACK_NAME_PATTERN,
                        "default": "Sparkscale",
                    },
                    st.EMR_INSTANCE_ROLE_KEY: {
                        "description": "Optional EMR EC2 instance role name: it may read the heap-agent "
                        "assets and publish the heap metrics.",
                        "type": "string",
                        "pattern": st.ROLE_NAME_PATTERN,
                    },
                },
            }
        },
    }


def schema_text(*, cdk_json: bool) -> str:
    """What `config schema [--cdk-json]` prints, and what schemas/ holds."""
    return json.dumps(cdk_json_schema() if cdk_json else config_json_schema(), indent=2) + "\n"


def _schema(args: argparse.Namespace) -> int:
    print(schema_text(cdk_json=args.cdk_json), end="")
    return 0


def _table(args: argparse.Namespace) -> int:
    table = config_table_markdown()
    if args.write is None:
        print(table)
        return 0
    path = Path(args.write)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    start, end = "<!-- section:config-table -->", "<!-- /section:config-table -->"
    if start not in text or end not in text:
        raise CliError(f"{path}: no {start} … {end} markers")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{table}\n{end}{tail}", encoding="utf-8")
    return 0
