#!/usr/bin/env bash
# Run the paper's evaluations one after another, in the background, resumable.
#
#   scripts/run_evals.sh [MODEL]                 start in the background (nohup, nice -n 10); prints PID and log
#   scripts/run_evals.sh --foreground [MODEL]    the same, in this terminal
#
# MODEL is a GGUF path or alias (default: qwen2.5-coder-0.5b). Every completion is cached as it is
# made (see `cgstudio eval --help`), so running this again after a stop or a crash continues where it
# stopped; finished evals are then scored from the cache in seconds.
#
# Environment:
#   EVALS          the evals, in order [humaneval infill-multi infill-single]
#   MULTI_SAMPLE   tasks of the seeded infill-multi sample [300]; "all" runs all 5815
#   SAMPLE_SEED    seed of that sample [0]
#   OUT            results folder [eval-results/full-<model>]
#   EVAL_ARGS      extra `cgstudio eval` options, e.g. "--threads 4 --ctx-size 4096"
#   NICE           niceness [10]
# Each eval writes $OUT/<eval>.json (the --json document) and $OUT/<eval>/report.md; the log is
# $OUT/run.log.
set -euo pipefail

cd "$(dirname "$0")/.."
foreground=0
if [[ "${1:-}" == "--foreground" ]]; then
  foreground=1
  shift
fi
MODEL="${1:-qwen2.5-coder-0.5b}"
EVALS="${EVALS:-humaneval infill-multi infill-single}"
MULTI_SAMPLE="${MULTI_SAMPLE:-300}"
SAMPLE_SEED="${SAMPLE_SEED:-0}"
NICE="${NICE:-10}"
slug="$(basename "$MODEL" .gguf | tr -c 'A-Za-z0-9._\n-' '-')"
OUT="${OUT:-eval-results/full-$slug}"
PY="${PY:-.venv/bin/python}"
mkdir -p "$OUT"
LOG="$OUT/run.log"

if [[ $foreground -eq 0 ]]; then
  nohup env EVALS="$EVALS" MULTI_SAMPLE="$MULTI_SAMPLE" SAMPLE_SEED="$SAMPLE_SEED" OUT="$OUT" NICE="$NICE" \
    EVAL_ARGS="${EVAL_ARGS:-}" PY="$PY" "$0" --foreground "$MODEL" >>"$LOG" 2>&1 &
  echo "started PID $! (log: $LOG, results: $OUT)"
  exit 0
fi

echo "=== $(date -u +%FT%TZ) run_evals: model $MODEL, evals: $EVALS"
status=0
for task in $EVALS; do
  args=()
  if [[ "$task" == "infill-multi" && "$MULTI_SAMPLE" != "all" ]]; then
    args=(--sample "$MULTI_SAMPLE" --sample-seed "$SAMPLE_SEED")
  fi
  echo "=== $(date -u +%FT%TZ) $task ${args[*]:-}"
  start=$(date +%s)
  # shellcheck disable=SC2086  # EVAL_ARGS is a list of options
  if nice -n "$NICE" "$PY" -m cgstudio.cli.main eval "$task" --model "$MODEL" "${args[@]}" ${EVAL_ARGS:-} \
      --out "$OUT/$task" --json >"$OUT/$task.json.tmp"; then
    mv "$OUT/$task.json.tmp" "$OUT/$task.json"
    echo "=== $(date -u +%FT%TZ) $task done in $(( $(date +%s) - start )) s: $OUT/$task/report.md"
  else
    status=$?
    echo "=== $(date -u +%FT%TZ) $task stopped (exit $status); run this script again to resume"
    break
  fi
done
exit $status
