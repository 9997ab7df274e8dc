"""What every `sparkscale` command shares, in one place (docs/install.md, "CLI conventions").

- Errors: a command raises `CliError(message)`; `run_command` prints the one line `sparkscale <command>:
  <message>` on stderr and exits 2, whatever went wrong: bad input (arguments, settings, files) or a run
  that failed (AWS refused: `exit_code=EXIT_FAILED`, the same 2, named apart so a script's caller can read
  the code's intent). A `ConfigError` from any command is the same one line, exit 2.
  Argument errors (`SparkscaleArgumentParser.error`) take the same shape. No traceback for any of these.
- A closed pipe (`sparkscale … | head`) ends the command silently, exit 141 (128 + SIGPIPE, as `cat` does).
- Output paths are checked before the long part of a command: `writable_file` (a file the command will
  write), `new_output_dir` (a folder it will fill), `require_modules` (an optional extra it needs).
- AWS: `aws_session()` is the boto3 session every command creates; it honours AWS_REGION when
  AWS_DEFAULT_REGION (the only variable boto3 reads) is unset.

Cheap to import: no boto3, no matplotlib at import time.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, NoReturn

EXIT_OK: Final = 0
EXIT_FAILED: Final = 2  # one error style, one exit code (issue 19): a failed run exits as bad input does
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130
EXIT_BROKEN_PIPE: Final = 141


class CliError(Exception):
    """The one error a command reports: `message` becomes `sparkscale <command>: <message>`."""

    def __init__(self, message: str, *, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def error_line(command: str, message: str) -> str:
    """`sparkscale <command>: <message>`, on one line whatever the message held."""
    first = " ".join(message.split()) or "failed"
    return f"sparkscale {command}: {first}" if command else f"sparkscale: {first}"


class SparkscaleArgumentParser(argparse.ArgumentParser):
    """argparse with the house error line; sub-parsers made by `add_subparsers().add_parser` inherit it."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("sparkscale").strip()
        sys.stderr.write(error_line(command, f"{message} (see {self.prog} --help)") + "\n")
        sys.exit(EXIT_USAGE)


def run_command(command: str, func: Callable[[Any], int], args: Any) -> int:
    """Run one command's function and turn what it raises into the conventions above."""
    from sparkscale.config import ConfigError  # noqa: PLC0415 - pure and small

    try:
        code = int(func(args))
        sys.stdout.flush()  # a closed pipe shows here, not as a traceback at interpreter exit
        return code
    except BrokenPipeError:
        return broken_pipe()
    except CliError as exc:
        _stderr_line(error_line(command, exc.message))
        return exc.exit_code
    except ConfigError as exc:
        _stderr_line(error_line(command, str(exc)))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _stderr_line(error_line(command, "interrupted"))
        return EXIT_INTERRUPTED


def _stderr_line(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except BrokenPipeError:  # pragma: no cover - stderr closed too: nothing left to tell
        pass


def broken_pipe() -> int:
    """Whoever read stdout has gone: point stdout at /dev/null so the interpreter's final flush cannot raise
    again (the Python docs' recipe for SIGPIPE; SIG_DFL is not used: the demo's sockets would die of it too),
    and exit quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # pragma: no cover - stdout is no real file (a test's capture)
        pass
    return EXIT_BROKEN_PIPE


# --- output paths, checked before a long run ----------------------------------------------------------------
def writable_file(path: str | Path, *, flag: str) -> Path:
    """`path` can be written (created or replaced) now; raises CliError naming `flag` if not. Tries it for
    real (opening for append, removing a file it created), since permission bits do not stop root."""
    p = Path(path)
    if p.is_dir():
        raise CliError(f"{flag} {p}: is a directory")
    parent = p.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "no such directory"
        raise CliError(f"{flag} {p}: {parent} {what}")
    existed = p.exists()
    try:
        with p.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise CliError(f"{flag} {p}: cannot write: {exc.strerror or exc}") from None
    if not existed:
        p.unlink(missing_ok=True)
    return p


def new_output_dir(path: str | Path, *, flag: str) -> Path:
    """`path` is a folder the command may create and fill: not an existing file, its parent a folder."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise CliError(f"{flag} {p}: exists and is not a directory")
    if not p.exists():
        parent = p.parent
        if parent.exists() and not parent.is_dir():
            raise CliError(f"{flag} {p}: {parent} is not a directory")
    return p


def require_modules(*modules: str, extra: str, what: str) -> None:
    """Fail now, not after the run, when an optional dependency of `what` is not installed."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise CliError(
            f"{what} needs {', '.join(missing)}: pip install 'sparkscale[{extra}]'", exit_code=EXIT_USAGE
        )


# --- AWS ----------------------------------------------------------------------------------------------------
def aws_region(environ: Mapping[str, str], explicit: str | None = None) -> str | None:
    """The region the CLI's boto3 sessions use: `explicit` (--region), else AWS_DEFAULT_REGION (what boto3
    reads), else AWS_REGION (what the AWS docs, Lambda and most SDKs use); None leaves boto3 to its config
    file."""
    return explicit or environ.get("AWS_DEFAULT_REGION") or environ.get("AWS_REGION") or None


def aws_session(region: str | None = None) -> Any:
    """A boto3 Session in `aws_region(os.environ, region)`."""
    import boto3  # noqa: PLC0415 - only commands that talk to AWS pay for it

    return boto3.session.Session(region_name=aws_region(os.environ, region))
