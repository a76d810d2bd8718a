#!/usr/bin/env bash
# The GPU check, as one prepared run (about 6 minutes on an H200 machine, at most 10 by its time limits): the CUDA tests and the
# device-sensitive test files on the GPU, then gradient updates per second side by side (SB3 DQN,
# QR-DQN, the dqn preset, Rainbow graphed and eager), then the data-efficient Rainbow loop's agent
# steps per second for one process alone and for 8 processes sharing the GPU. Everything it prints is
# also written to $OUT (or /tmp/gpu_check) as gpu_check.log.
#
# On a machine without SB3, gymnasium or ale-py, put their wheels in .whl/ at the project root first
# (they are installed from there, offline):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
#     stable-baselines3 sb3-contrib gymnasium farama-notifications ale-py
#   bash benchmarks/gpu_check.sh
# A dry run of the whole script on the CPU, with tiny sizes: DEVICE=cpu QUICK=1 bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
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

section "tests on $device: CUDA-only tests and the device-sensitive files"
run 210 python3 -m pytest -q -p no:cacheprovider -o addopts="" -m "not slow" --durations=8 --device "$device" \
  tests/test_gradient_step.py tests/test_networks.py tests/test_noisy.py tests/test_prioritized.py \
  tests/test_save_load.py tests/test_probes.py tests/test_equivalence.py

section "gradient updates per second (Nature CNN, batch 32, Breakout frames)"
run 110 python3 benchmarks/gpu_updates.py --device "$device" "${updates[@]}"

section "DER loop, one process"
run 120 python3 benchmarks/der_speed.py --device "$device" --procs 1 --contenders rainbow rainbow-eager sb3-dqn \
  "${steps[@]}"

section "DER loop, $procs processes sharing the device"
run 110 python3 benchmarks/der_speed.py --device "$device" --procs "$procs" --contenders rainbow "${steps[@]}"
