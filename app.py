#!/usr/bin/env python3
"""The CDK app: wiring only. `cdk synth` / `make synth` runs this file (cdk.json "app"); the tests build the
stack through sparkscale_cdk.wiring and never import it. A bad setting in the context (cdk.json or
`-c key=value`) is one line, `sparkscale synth: <why>`, exit 2, as the `sparkscale` CLI reports errors.

It runs from a checkout, so the checkout's own packages come first on the path (infra/ holds the
`sparkscale_cdk` package, lambdas/ the `sparkscale` one), whatever another install of them says."""

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent
sys.path[:0] = [str(_ROOT / "infra"), str(_ROOT / "lambdas")]

from aws_cdk import App  # noqa: E402
from sparkscale.config import ConfigError  # noqa: E402
from sparkscale_cdk.wiring import add_nag, build_stack  # noqa: E402


def main() -> int:
    app = App()
    try:
        build_stack(app)
    except ConfigError as exc:
        print(f"sparkscale synth: {exc}", file=sys.stderr)
        return 2
    add_nag(app)
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
