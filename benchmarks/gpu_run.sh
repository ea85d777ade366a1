#!/usr/bin/env bash
# One-GPU check of rsnb's accelerator path in <= 9 minutes (BUDGET=150 s per training run), everything written to $OUT:
#   1. the notebooks with `#| cuda` cells (tools/run_tests.py --flags cuda): tiled prediction on the GPU and the five
#      trainers' `device_check` (a few steps on CPU and GPU, losses compared); skipped when no GPU is visible;
#   2. the pipelining benchmark (benchmarks/tiled_predict_overhead.py --simulate) with the simulated accelerator and,
#      on a GPU, with a real model on it;
#   3. the codec (benchmarks/compression_train.py) and ECEA (benchmarks/ecea_train.py) trained for BUDGET seconds each,
#      with weights, model cards, checkpoints and jsonl logs.
# Rehearsal on a CPU: BUDGET=30 OUT=/tmp/gpu_rehearsal benchmarks/gpu_run.sh   (about 3 minutes on 2 cores)
# Usage: OUT=DIR [BUDGET=150] [CODEC_BUDGET=s] [ECEA_BUDGET=s] [CODEC_ARGS="--init W.pth --balanced --bs 32"] [PY=.venv/bin/python] benchmarks/gpu_run.sh
#   (CODEC_BUDGET / ECEA_BUDGET default to BUDGET; CODEC_ARGS are added to compression_train.py's arguments)
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to the folder for results}; BUDGET=${BUDGET:-150}; PY=${PY:-.venv/bin/python}
CODEC_BUDGET=${CODEC_BUDGET:-$BUDGET}; ECEA_BUDGET=${ECEA_BUDGET:-$BUDGET}; CODEC_ARGS=${CODEC_ARGS:-"--bs 8"}
[ -x "$PY" ] || PY=$(command -v "$PY" || command -v python3 || echo python)
mkdir -p "$OUT"; LOG="$OUT/gpu_run.log"; : > "$LOG"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
CUDA=$($PY -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null || echo 0)
DEV=cpu; [ "$CUDA" = 1 ] && DEV=cuda
SMALL=""; [ "$CUDA" = 1 ] || SMALL="--small --img-size 32 --bs 4"   # the CPU rehearsal trains a narrow ECEA
declare -A STATUS
step() {  # step NAME SECONDS CMD...: run with a time limit, log, record the exit status
  local name=$1 secs=$2; shift 2
  echo "== $name ($(date -u +%H:%M:%S), limit ${secs}s): $*" | tee -a "$LOG"
  local t0=$SECONDS
  timeout --kill-after=10 "$secs" "$@" >> "$LOG" 2>&1; local rc=$?
  STATUS[$name]="rc=$rc seconds=$((SECONDS - t0))"
  echo "== $name: ${STATUS[$name]}" | tee -a "$LOG"
}
$PY - >> "$LOG" 2>&1 <<'PYEOF'
import torch, platform; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpu', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, platform.node())
PYEOF
if [ "$CUDA" = 1 ]; then
  # every notebook with a `#| cuda` cell: tiled prediction on the GPU and `device_check` of the five trainers
  CUDA_NBS=$(grep -l '#| cuda' nbs/*.ipynb nbs/papers/*.ipynb 2>/dev/null | grep -v index.ipynb | xargs -n1 basename | sed 's/\.ipynb$//' | paste -sd'|')
  step cuda_cells 240 $PY tools/run_tests.py "($CUDA_NBS)" --flags cuda --no-pytest --timeout 120 --workers 4
else
  STATUS[cuda_cells]="skipped (no GPU)"; echo "== cuda_cells: skipped (no GPU)" | tee -a "$LOG"
fi
mkdir -p "$OUT/results"
step pipeline_sim 240 $PY benchmarks/tiled_predict_overhead.py --simulate --repeats 2 --mosaic "${MOSAIC:-4}" --name "gpu_run_pipeline_sim"
[ "$CUDA" = 1 ] && step pipeline_cuda 120 $PY benchmarks/tiled_predict_overhead.py --simulate --repeats 2 --device cuda --name "gpu_run_pipeline_cuda"
mv -f benchmarks/results/gpu_run_pipeline_*.json "$OUT/results/" 2>/dev/null
step codec_train $((CODEC_BUDGET + 120)) $PY benchmarks/compression_train.py --seconds "$CODEC_BUDGET" --out "$OUT/codec" --threads "$OMP_NUM_THREADS" $CODEC_ARGS
step codec_export 90 $PY benchmarks/compression_export.py "$OUT/codec" --dest "$OUT/weights/codec" --hardware "$DEV (benchmarks/gpu_run.sh)" --note "gpu_run.sh: ${CODEC_BUDGET} s budget, $CODEC_ARGS"
step ecea_train $((ECEA_BUDGET + 120)) $PY benchmarks/ecea_train.py --seconds "$ECEA_BUDGET" --out "$OUT/ecea" --device "$DEV" $SMALL
{ echo "{"; first=1; for k in "${!STATUS[@]}"; do [ $first = 1 ] || echo ","; first=0; printf '  "%s": "%s"' "$k" "${STATUS[$k]}"; done; echo; echo "}"; } > "$OUT/status.json"
cat "$OUT/status.json"
grep -q 'rc=[1-9]' "$OUT/status.json" && exit 1 || exit 0
