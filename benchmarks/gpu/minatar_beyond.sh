#!/usr/bin/env bash
# The MinAtar rows of `rainbow-iqn` and `m-dqn` (SpaceInvaders-v1 and Breakout-v1, 3 seeds, 500k steps) on
# one GPU machine: the 12 runs of the grid as 12 processes sharing the GPU through CUDA's Multi-Process
# Service, with the default test suite on the GPU beside them. The grid is `minatar_curves.py`, unchanged;
# only `--jobs` and `--checkpoint-every 0` differ from the CPU command in BENCHMARKS.md.
#
#   bash benchmarks/gpu/minatar_beyond.sh start [SECONDS]   # install, start MPS and the grid (detached),
#                                                           # run the suite, then pack after SECONDS (540)
#   bash benchmarks/gpu/minatar_beyond.sh wait [SECONDS]    # wait for the grid at most SECONDS (120), pack
#
# The grid runs in its own process session, so it outlives the `start` command; `wait` is for a later
# command on the same machine. Each pack writes the grid folder's small files (study, episodes, configs,
# TensorBoard logs; no models) to $OUT/minatar-beyond.tar.gz, with progress.log and, after `start`,
# suite.log. ALGOS="rainbow-iqn" runs only those presets' runs; NO_SUITE=1 skips the suite.
# A dry run on the CPU, tiny: DEVICE=cpu STEPS=3000 JOBS=2 bash benchmarks/gpu/minatar_beyond.sh start 60
set -uo pipefail
cd "$(dirname "$0")/../.."
if ! python3 -c "import stable_baselines3, minatar, optuna" 2>/dev/null && [ ! -d /tmp/site ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
fi
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
# tuning/ and zoo_configs/ are rainbow_ext.tuning and rainbow_ext.zoo_configs only once the package is installed:
# an editable install, offline, or else the source folder on the path (tune's tests then fail)
python3 -c "import rainbow_ext.tuning" 2>/dev/null \
  || python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >/dev/null 2>&1 \
  || export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
device=${DEVICE:-cuda}
grid=${GRID:-/tmp/minatar-beyond}
out=${OUT:-/tmp/minatar-beyond-out}
mkdir -p "$out"
phase=${1:-start}

progress() {  # the last step reached by each run, from its episodes file
  date -u +%T
  for f in "$grid"/runs/*/*/seed_*/episodes.csv; do
    [ -f "$f" ] || continue
    printf '%s %s\n' "$(tail -n 1 "$f" | cut -d, -f1)" "${f#"$grid"/runs/}"
  done
}

pack() {
  progress >>"$out/progress.log"
  cp "$grid/grid.out" "$out/grid.out" 2>/dev/null
  (cd "$grid" && tar czf "$out/minatar-beyond.tar.gz" --exclude='*.zip' --exclude='*.pkl' . 2>/dev/null)
  ls -la "$out"
}

if [ "$phase" = start ]; then
  limit=${2:-540}
  started=$SECONDS
  python3 -c "import torch, stable_baselines3, minatar, optuna; print(torch.__version__, torch.cuda.is_available())" \
    | tee "$out/progress.log"
  if [ "$device" = cuda ] && command -v nvidia-cuda-mps-control >/dev/null 2>&1; then
    export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
    mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
    timeout 20 nvidia-cuda-mps-control -d && echo "MPS started" | tee -a "$out/progress.log"
  fi
  mkdir -p "$grid"
  # shellcheck disable=SC2086  # ALGOS: presets separated by spaces
  setsid python3 benchmarks/learning/minatar_curves.py --games SpaceInvaders Breakout --algos ${ALGOS:-rainbow-iqn m-dqn} \
    --seeds 3 --steps "${STEPS:-500000}" --jobs "${JOBS:-12}" --checkpoint-every 0 --folder "$grid" --plot \
    >"$grid/grid.out" 2>&1 </dev/null &
  echo "grid started, pid $!" | tee -a "$out/progress.log"
  if [ -z "${NO_SUITE:-}" ]; then
    hang=(); python3 -c "import pytest_timeout" 2>/dev/null && hang=(--timeout 150)
    python3 -c "import wandb" 2>/dev/null || hang+=(--deselect tests/zoo/test_experiment.py::test_track_writes_an_offline_wandb_run)
    workers=(); python3 -c "import xdist" 2>/dev/null && workers=(-n "${WORKERS:-4}")
    timeout $((limit - 20)) python3 -m pytest -q --tb=short -p no:cacheprovider -o addopts="" -m "not slow" -rfEs \
      --durations=8 --device "$device" "${workers[@]}" "${hang[@]}" tests >"$out/suite.log" 2>&1
    echo "suite exit $? after $((SECONDS - started)) s" | tee -a "$out/progress.log"
    tail -n 25 "$out/suite.log"
  fi
  while [ $((SECONDS - started)) -lt "$limit" ] && pgrep -f minatar_curves.py >/dev/null; do
    progress >>"$out/progress.log"
    sleep 30
  done
  pack
  tail -n 14 "$out/progress.log"
else
  limit=${2:-120}
  started=$SECONDS
  while [ $((SECONDS - started)) -lt "$limit" ] && pgrep -f minatar_curves.py >/dev/null; do sleep 5; done
  pgrep -f minatar_curves.py >/dev/null && echo "grid still running after $limit s" || echo "grid finished"
  pack
  tail -n 14 "$out/progress.log"
  tail -n 30 "$grid/grid.out"
fi
