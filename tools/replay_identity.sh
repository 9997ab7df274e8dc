#!/usr/bin/env bash
# Usage: tools/replay_identity.sh OUTDIR   (from a checkout's root, after `make venv`)
# Writes the replay's JSON, timeline and printed summary for every bundled trace, both synthetic shapes and a
# spot-market run into OUTDIR. Run it before and after a change that must not change behaviour (a refactor,
# a speed-up) and compare the two folders with `diff -r`: every file must be byte-identical.
set -euo pipefail
out=${1:?usage: tools/replay_identity.sh OUTDIR}
mkdir -p "$out"
py=${PYTHON:-.venv/bin/python}
export PYTHONPATH="$PWD/lambdas:$PWD/tools:$PWD"
run() {
  local name=$1
  shift
  "$py" -m sparkscale_tools.cli replay "$@" --json "$out/$name.json" --timeline "$out/$name.csv" >"$out/$name.stdout"
}
run google --trace data/traces/google2019_assigned_mem.csv
run azure --trace data/traces/azure2019_assigned_mem.csv
run swim --trace data/traces/swim_fb2009_hadoop.csv
run diurnal --synthetic diurnal --days 3
run bursty --synthetic bursty-batch --days 3
run swim_spot --trace data/traces/swim_fb2009_hadoop.csv --interruption-rate 0.05 --shortfall-per-day 2 --seed 3
echo "written to $out"
