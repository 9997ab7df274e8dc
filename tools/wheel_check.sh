#!/usr/bin/env bash
# Usage: tools/wheel_check.sh   (from a checkout's root, after `make venv`; `make wheel-check` runs it)
# What `pip install` of the built wheel gives a user, checked outside the checkout: build the wheel, install it
# with all its extras into a fresh venv (versions held to requirements.lock), then, from an empty folder with
# no PYTHONPATH, run the CLI, a replay with a plot, the heap-agent bundle, a CDK app that synthesizes the
# stack from the installed construct (its Lambda asset staged from the installed package), and a short demo
# of the installed handlers on that template.
set -euo pipefail
repo=$PWD
python=${PYTHON:-python3.11}
work=$(mktemp -d "${TMPDIR:-/tmp}/sparkscale-wheel-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
unset PYTHONPATH
start=$SECONDS
step() { printf '== %s (%ss)\n' "$1" "$((SECONDS - start))"; }

step "build the wheel"
"$repo/.venv/bin/python" -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" "$repo"
wheel=$(ls "$work"/dist/sparkscale-*.whl)
unzip -Z1 "$wheel" >"$work/files.txt"
for f in sparkscale_cdk/_lambda_handlers/alarm.py sparkscale/agent/_bootstrap/install-heap-agent.sh \
  sparkscale_tools/_traces/swim_fb2009_hadoop.csv 'sparkscale-[^/]*\.dist-info/licenses/LICENSE'; do
  grep -qx "$f" "$work/files.txt" || { echo "wheel-check: the wheel has no $f" >&2; exit 1; }
done

step "install it with [replay,cdk,demo] into a fresh venv"
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip==26.3
# The lock's versions as constraints (hash lines dropped): they choose versions, they install nothing, so a
# dependency the wheel forgets to declare is missing here.
sed -e '/^ *--hash/d' -e 's/ *\\$//' "$repo/requirements.lock" >"$work/constraints.txt"
"$work/venv/bin/python" -m pip install --quiet -c "$work/constraints.txt" "${wheel}[replay,cdk,demo]"
"$work/venv/bin/python" -m pip check

# The venv's own python and sparkscale first; node (for jsii) from the checkout's venv.
export PATH="$work/venv/bin:$repo/.venv/bin:$PATH"
mkdir "$work/run"
cd "$work/run"
python - <<'PY'
import sparkscale, sparkscale_cdk, sparkscale_tools
for m in (sparkscale, sparkscale_cdk, sparkscale_tools):
    assert "site-packages" in m.__file__, m.__file__
PY

step "sparkscale --help"
sparkscale --help >/dev/null

step "sparkscale replay --synthetic diurnal --days 1 --plot out.png"
sparkscale replay --synthetic diurnal --days 1 --plot out.png >replay.txt
test -s out.png

step "sparkscale heap-agent-bundle"
sparkscale heap-agent-bundle bundle >/dev/null
test -s bundle/heap-agent.pyz && test -s bundle/install-heap-agent.sh

step "a CDK app synthesizes the stack from the installed construct"
python - <<'PY'
from pathlib import Path

from aws_cdk import App
from sparkscale_cdk.wiring import add_nag, build_stack

app = App(outdir="cdk.out", context={"sparkscale": {"clusters": ["j-WHEELCHECK1"]}})
build_stack(app)
add_nag(app)
app.synth()
assets = [p for p in Path("cdk.out").glob("asset.*") if (p / "handlers" / "alarm.py").is_file()]
assert len(assets) == 1, assets
assert (assets[0] / "sparkscale" / "policy" / "__init__.py").is_file()
assert not list(assets[0].rglob("_bootstrap"))
PY

step "sparkscale demo on that template (the installed handlers on a moto server)"
sparkscale demo --template cdk.out --synthetic bursty-batch --hours 1 --no-compare --progress off --out demo-out >demo.txt

step "done"
