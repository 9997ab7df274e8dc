#!/usr/bin/env python3
"""The CDK app: wiring only. `cdk synth` / `make synth` runs this file (cdk.json "app"); the tests build the
stack through infra.wiring and never import it."""

from aws_cdk import App

from infra.wiring import add_nag, build_stack


def main() -> None:
    app = App()
    build_stack(app)
    add_nag(app)
    app.synth()


if __name__ == "__main__":
    main()
