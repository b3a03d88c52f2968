#!/usr/bin/env bash
# Fuzz the sans-IO parsers with atheris (libFuzzer): every input is parsed in one feed and in
# random pieces, checking no exception, bounded buffering and split-invariance (fuzz/harness.py).
#
#   scripts/fuzz.sh [RUNS] [--merge]
#
# RUNS (default 1000000) inputs per parser. The two parsers run side by side, one process each
# (one per core on a 2-core machine), each capped at MAX_SECONDS (default 840). TARGETS (default
# "text_parser binary_parser") picks the parsers. Scratch corpora
# live in a temp dir seeded from fuzz/corpus/<target>; with --merge, inputs that add coverage are
# merged back into fuzz/corpus/<target> (libFuzzer -merge=1 keeps a minimal covering set).
# Prints one summary line per parser: runs, seconds, inputs/s, coverage, and the exit status.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-1000000}
MERGE=${2:-}
MAX_SECONDS=${MAX_SECONDS:-840}
PY=${PYTHON:-python3}
[ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ] && PY=.venv/bin/python  # what scripts/setup.sh installed
"$PY" -c "import atheris" 2>/dev/null || "$PY" -m pip install -q "atheris>=2.3"  # only the fuzzer needs it
WORK=$(mktemp -d /tmp/cacheproxy-fuzz.XXXXXX)
declare -A MAXLEN=([text_parser]=8192 [binary_parser]=20000)
declare -A DICT=([text_parser]=fuzz/text.dict [binary_parser]=fuzz/binary.dict)
declare -A PIDS=() STARTED=()
TARGETS=${TARGETS:-"text_parser binary_parser"}

for target in $TARGETS; do
  STARTED[$target]=$(date +%s)
  mkdir -p "$WORK/$target" "$WORK/$target-artifacts"
  cp fuzz/corpus/$target/* "$WORK/$target/" 2>/dev/null || true
  "$PY" fuzz/fuzz_parser.py "$target" -atheris_runs="$RUNS" -max_total_time="$MAX_SECONDS" \
    -dict="${DICT[$target]}" -max_len="${MAXLEN[$target]}" -timeout=10 -rss_limit_mb=1024 \
    -print_final_stats=1 -artifact_prefix="$WORK/$target-artifacts/" "$WORK/$target" \
    >"$WORK/$target.log" 2>&1 &
  PIDS[$target]=$!
done

status=0
for target in $TARGETS; do
  rc=0
  wait "${PIDS[$target]}" || rc=$?
  [ "$rc" -eq 0 ] || status=1
  # "Done N in S second(s)" when the run count is reached; final stats when the time cap hits first
  runs=$(grep -oE '^Done [0-9]+|number_of_executed_units: *[0-9]+' "$WORK/$target.log" | grep -oE '[0-9]+$' \
         | tail -1 || true)
  secs=$(( $(date +%s) - STARTED[$target] ))
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$WORK/$target.log" | tail -1 || true)
  rate=$(awk -v r="${runs:-0}" -v s="${secs:-0}" 'BEGIN { if (s > 0) printf "%d", r / s; else print "n/a" }')
  echo "$target: runs=${runs:-?} seconds=${secs:-?} inputs_per_s=$rate ${cov} exit=$rc log=$WORK/$target.log"
  if [ "$rc" -ne 0 ]; then
    grep -E 'Error|Exception|assert|crash-' "$WORK/$target.log" | tail -20 || true
    ls "$WORK/$target-artifacts/" || true
  fi
  if [ "$MERGE" = "--merge" ] && [ "$rc" -eq 0 ]; then
    mkdir -p "$WORK/$target-merged"
    # libFuzzer re-executes argv[0] for the merge: fuzz/fuzz_parser.py must stay executable
    "$PY" fuzz/fuzz_parser.py "$target" -merge=1 -max_len="${MAXLEN[$target]}" \
      "$WORK/$target-merged" fuzz/corpus/$target "$WORK/$target" >"$WORK/$target-merge.log" 2>&1 || true
    if [ -n "$(ls -A "$WORK/$target-merged")" ]; then
      rm -f fuzz/corpus/$target/*
      cp "$WORK/$target-merged"/* fuzz/corpus/$target/
    else
      echo "$target: merge produced nothing, corpus unchanged (see $WORK/$target-merge.log)"
    fi
    echo "$target: corpus now $(ls fuzz/corpus/$target | wc -l) files, $(du -sk fuzz/corpus/$target | cut -f1) KiB"
  fi
done
exit $status
