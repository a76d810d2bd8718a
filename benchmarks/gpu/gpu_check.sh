#!/usr/bin/env bash
# The GPU check, as one prepared run (about 6 minutes on an H200 machine, at most 11 by its time limits): the whole
# default test suite on the GPU (CUDA-only tests included; spread over the cores with pytest-xdist where it is
# installed), then gradient updates per second side by side (SB3 DQN,
# QR-DQN, the dqn preset, Rainbow graphed and eager), then the data-efficient Rainbow loop's agent
# steps per second for one process alone and for 8 processes sharing the GPU (in turns, then through
# CUDA's MPS where it starts), and an experiment: the loss terms through torch.compile. Everything it prints is
# also written to $OUT (or /tmp/gpu_check) as gpu_check.log.
#
# On a machine without SB3, gymnasium or ale-py, put their wheels in .whl/ at the project root first
# (they are installed from there, offline):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
#     stable-baselines3 sb3-contrib gymnasium farama-notifications ale-py minatar optuna sqlalchemy alembic mako colorlog
#   bash benchmarks/gpu/gpu_check.sh
# A dry run of the whole script on the CPU, with tiny sizes: DEVICE=cpu QUICK=1 bash benchmarks/gpu/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# tuning/ and zoo_configs/ are rainbow_ext.tuning and rainbow_ext.zoo_configs only once the package is installed:
# an editable install, offline, or else the source folder on the path (tune's tests then fail)
python3 -c "import rainbow_ext.tuning" 2>/dev/null \
  || python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >/dev/null 2>&1 \
  || export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
device=${DEVICE:-cuda}
out=${OUT:-/tmp/gpu_check}
mkdir -p "$out"
log=$out/gpu_check.log
: >"$log"
if [ -n "${QUICK:-}" ]; then
  updates=(--fill 300 --updates 5 --rounds 1); steps=(--steps 30 --warmup 5); procs=2
else
  updates=(--fill 2000 --updates 300 --rounds 3); steps=(--steps 1500 --warmup 200); procs=8
fi

section() { printf '\n## %s\n' "$1" | tee -a "$log"; }
run() { local limit=$1; shift; timeout "$limit" "$@" 2>&1 | tee -a "$log"; echo "(exit ${PIPESTATUS[0]})" | tee -a "$log"; }

section "machine"
run 60 python3 -c "import torch, platform; print(platform.python_version(), 'torch', torch.__version__, \
'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device'); \
import numba, scipy, numpy, stable_baselines3, sb3_contrib, gymnasium, ale_py, rainbow_ext; \
print('numpy', numpy.__version__, 'numba', numba.__version__, 'sb3', stable_baselines3.__version__)"

section "the whole default suite on $device (CUDA-only tests included)"
# pytest-xdist spreads the suite over the machine's cores where it is installed; pytest-timeout stops a hung test.
workers=(); python3 -c "import xdist" 2>/dev/null && workers=(-n "${WORKERS:-12}")
hang=(); python3 -c "import pytest_timeout" 2>/dev/null && hang=(--timeout 120)
# --track's test needs wandb, an optional extra that a bare GPU machine may lack
python3 -c "import wandb" 2>/dev/null || hang+=(--deselect tests/zoo/test_experiment.py::test_track_writes_an_offline_wandb_run)
run "${TEST_LIMIT:-200}" python3 -m pytest -v --tb=short -p no:cacheprovider -o addopts="" -m "not slow" -rfEs --durations=8 \
  --device "$device" "${workers[@]}" "${hang[@]}" tests

section "gradient updates per second (Nature CNN, batch 32, Breakout frames)"
run 100 python3 benchmarks/gpu/gpu_updates.py --device "$device" "${updates[@]}"

section "torch.compile inside the graph (an experiment): the loss terms compiled, side by side"
run 150 python3 benchmarks/gpu/gpu_updates.py --device "$device" "${updates[@]}" --contenders sb3-dqn rainbow rainbow-compiled

section "DER loop, one process"
run 100 python3 benchmarks/speed/der_speed.py --device "$device" --procs 1 --contenders rainbow rainbow-eager sb3-dqn \
  "${steps[@]}"

section "DER loop, $procs processes sharing the device"
run 100 python3 benchmarks/speed/der_speed.py --device "$device" --procs "$procs" --contenders rainbow "${steps[@]}"

# CUDA's Multi-Process Service lets the processes' kernels run side by side instead of taking turns on
# the device; where it cannot start (or on the CPU), this section says so and is skipped.
if [ "$device" = cuda ] && command -v nvidia-cuda-mps-control >/dev/null 2>&1; then
  section "DER loop, $procs processes sharing the device through MPS"
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  if timeout 20 nvidia-cuda-mps-control -d 2>&1 | tee -a "$log"; then
    run 80 python3 benchmarks/speed/der_speed.py --device "$device" --procs "$procs" --contenders rainbow "${steps[@]}"
    echo quit | timeout 20 nvidia-cuda-mps-control
    tail -5 "$CUDA_MPS_LOG_DIRECTORY"/control.log 2>/dev/null | tee -a "$log"
  fi
  unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
else
  section "MPS: nvidia-cuda-mps-control is not available on this machine"
fi
