"""The Lambda asset is the handlers and the sparkscale packages, plus the replay engine the weekly digest runs
(sparkscale_tools.replay.savings and the modules it imports), staged the same way from a checkout or a wheel
(sparkscale_cdk.lambda_asset); the wheel's own check (make wheel-check) synthesizes from the installed
package."""

from __future__ import annotations

from pathlib import Path

from sparkscale_cdk import lambda_asset

REPO = Path(__file__).resolve().parents[2]


def _files(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def test_from_a_checkout_the_asset_is_lambdas_handlers_and_sparkscale(tmp_path: Path) -> None:
    staged = lambda_asset.stage_lambda_asset(tmp_path)
    expected = {f"handlers/{f}" for f in _files(REPO / "lambdas" / "handlers")}
    expected |= {f"sparkscale/{f}" for f in _files(REPO / "lambdas" / "sparkscale")}
    # the weekly digest's comparison is the savings report's own code: its replay engine, and no more
    engine = {m.replace(".", "/") + ".py" for m in lambda_asset.replay_engine()}
    expected |= engine | {"sparkscale_tools/__init__.py", "sparkscale_tools/replay/__init__.py"}
    assert _files(staged) == expected
    assert "handlers/alarm.py" in expected
    assert "sparkscale/policy/__init__.py" in expected
    assert "sparkscale_tools/replay/savings.py" in expected
    for path in engine:  # copied as they are
        assert (staged / path).read_bytes() == (REPO / "tools" / path).read_bytes()


def test_an_installed_package_stages_its_own_handlers(tmp_path: Path, monkeypatch) -> None:
    installed = tmp_path / "site" / "sparkscale_cdk"
    (installed / "_lambda_handlers").mkdir(parents=True)
    (installed / "_lambda_handlers" / "alarm.py").write_text("# installed\n")
    monkeypatch.setattr(lambda_asset, "PACKAGE_DIR", installed)
    assert lambda_asset.handlers_dir() == installed / "_lambda_handlers"
    staged = lambda_asset.stage_lambda_asset(tmp_path / "asset")
    assert (staged / "handlers" / "alarm.py").read_text() == "# installed\n"
    assert not list(staged.rglob("_bootstrap"))
