"""The CLI's shared conventions (sparkscale_tools.cli.conventions): one error line `sparkscale <command>:
<message>` with exit 2, a closed pipe ends quietly, output paths checked before a long run, AWS_REGION
honoured. Each is checked through the real `sparkscale` entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sparkscale_tools.cli import conventions, main

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("lambdas", "tools", "infra", "."))}


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# --- one error line -----------------------------------------------------------------------------------------
def test_error_line_is_the_command_and_the_message_on_one_line() -> None:
    assert conventions.error_line("replay", "bad\n  thing") == "sparkscale replay: bad thing"
    assert conventions.error_line("", "x") == "sparkscale: x"


def test_a_bad_setting_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "settings.json"
    bad.write_text('{"deadband_pct": 60}')
    assert main(["config", "check", str(bad)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("sparkscale config check: ")
    assert "'deadband_pct'" in line


def test_argument_errors_take_the_same_shape(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["replay", "--synthetic", "diurnal", "--days", "x"])
    assert exit_.value.code == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("sparkscale replay: argument --days: invalid float value: 'x'")


@pytest.mark.parametrize(
    ("argv", "prefix"),
    [
        (["plan", "--memory-gib", "-1", "--offers", "x.csv"], "sparkscale plan: --memory-gib"),
        (["parse-event", "/no/such/file.json"], "sparkscale parse-event: cannot read"),
        (["decide", "--cluster", "nope"], "sparkscale decide: --cluster 'nope'"),
        (["replay", "--trace", "/no/such.csv"], "sparkscale replay: "),
    ],
)
def test_every_command_reports_errors_the_same_way(
    argv: list[str], prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert _one_line(capsys.readouterr().err).startswith(prefix)


def test_a_runtime_failure_raised_as_cli_error_keeps_its_exit_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def fails(_args: object) -> int:
        raise conventions.CliError("AWS said no", exit_code=conventions.EXIT_FAILED)

    assert conventions.run_command("decide", fails, None) == 2  # one exit code for every error
    assert capsys.readouterr().err == "sparkscale decide: AWS said no\n"


# --- a closed pipe ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["config", "schema"], conventions.EXIT_BROKEN_PIPE),
        (["--help"], 0),  # argparse swallows the write error itself
    ],
)
def test_a_closed_pipe_is_silent(argv: list[str], code: int) -> None:
    """`sparkscale … | head`: the reader is gone before the command writes; no traceback, exit 141."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sparkscale_tools.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
        cwd=REPO,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == code
    assert err == ""


# --- output paths, before the run ---------------------------------------------------------------------------
def test_writable_file_accepts_a_new_or_existing_file_and_leaves_no_trace(tmp_path: Path) -> None:
    new = tmp_path / "out.json"
    assert conventions.writable_file(new, flag="--json") == new
    assert not new.exists()
    old = tmp_path / "old.csv"
    old.write_text("kept")
    conventions.writable_file(old, flag="--timeline")
    assert old.read_text() == "kept"


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda t: t, "is a directory"),
        (lambda t: t / "missing" / "x.png", "no such directory"),
        (lambda t: [(t / "file").write_text(""), t / "file" / "x.png"][1], "is not a directory"),
    ],
)
def test_writable_file_refuses_what_cannot_be_written(tmp_path: Path, make, why: str) -> None:
    with pytest.raises(conventions.CliError, match=why):
        conventions.writable_file(make(tmp_path), flag="--plot")


def test_an_unwritable_plot_fails_before_the_replay_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["replay", "--synthetic", "diurnal", "--days", "400", "--plot", str(tmp_path / "no" / "x.png")]
    )
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""  # nothing ran: a 400-day replay would have printed its summary
    assert _one_line(err).startswith(f"sparkscale replay: --plot {tmp_path / 'no' / 'x.png'}: ")


def test_a_plot_format_matplotlib_cannot_write_fails_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", "--synthetic", "diurnal", "--days", "400", "--plot", str(tmp_path / "x.xyz")]) == 2
    assert "not an image format" in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["replay", "--synthetic", "diurnal", "--days", "400", "--plot", "x.png"], "replay"),
        (["demo", "--synthetic", "diurnal"], "demo"),
    ],
)
def test_a_missing_extra_is_named_before_the_run(
    argv: list[str],
    extra: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    real = conventions.importlib.util.find_spec
    monkeypatch.setattr(
        conventions.importlib.util, "find_spec", lambda name: None if name == "matplotlib" else real(name)
    )
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    line = _one_line(capsys.readouterr().err)
    assert "matplotlib" in line
    assert f"pip install 'sparkscale[{extra}]'" in line


def test_demo_output_onto_a_file_fails_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "taken"
    target.write_text("")
    assert main(["demo", "--synthetic", "diurnal", "--out", str(target)]) == 2
    assert (
        _one_line(capsys.readouterr().err)
        == f"sparkscale demo: --out {target}: exists and is not a directory"
    )


def test_heap_agent_bundle_onto_a_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "taken"
    target.write_text("")
    assert main(["heap-agent-bundle", str(target)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert _one_line(err) == f"sparkscale heap-agent-bundle: {target}: exists and is not a directory"


# --- AWS region ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("environ", "explicit", "region"),
    [
        ({"AWS_REGION": "eu-west-1"}, None, "eu-west-1"),
        ({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-east-2"}, None, "us-east-2"),
        ({"AWS_REGION": "eu-west-1"}, "ap-south-1", "ap-south-1"),
        ({}, None, None),
    ],
)
def test_aws_region_honours_aws_region_when_boto3s_variable_is_unset(
    environ: dict[str, str], explicit: str | None, region: str | None
) -> None:
    assert conventions.aws_region(environ, explicit) == region


def test_the_cli_session_uses_aws_region(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    assert conventions.aws_session().region_name == "eu-central-1"


def test_decide_without_any_region_says_which_variables_to_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "SPARKSCALE_CONFIG_JSON"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    assert main(["decide", "--cluster", "j-ABCDEF"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(
        "sparkscale decide: no AWS region configured: set AWS_REGION or AWS_DEFAULT_REGION"
    )


# --- cdk synth ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_bad_setting_during_synth_is_one_line_exit_2(tmp_path: Path) -> None:
    """What `cdk synth` runs (app.py, the context in CDK_CONTEXT_JSON as the CDK CLI passes it)."""
    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": '{"sparkscale": {"clusters": ["j-ABC"], "reconcile_rate_s": 90}}',
        "CDK_OUTDIR": str(tmp_path),
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        "PATH": f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",  # make venv's Node
    }
    proc = subprocess.run(
        [sys.executable, str(REPO / "app.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 2
    assert _one_line(proc.stderr) == (
        "sparkscale synth: cdk context 'sparkscale': invalid setting 'reconcile_rate_s': "
        "must be whole minutes for an EventBridge rate, got 90"
    )


def test_a_replay_into_a_closed_pipe_still_writes_its_files(tmp_path: Path) -> None:
    """`sparkscale replay … --json out.json | head -1`: head leaves early, the JSON is written anyway."""
    out = tmp_path / "scores.json"
    argv = ["replay", "--synthetic", "diurnal", "--days", "0.5", "--policies", "static-peak"]
    argv += ["--json", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sparkscale_tools.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
        cwd=REPO,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == conventions.EXIT_BROKEN_PIPE
    assert err == ""
    assert out.stat().st_size > 0
