#!/usr/bin/env bash
# The device check (`make gpu-check`): on a Linux machine with an NVIDIA GPU, in about 8 minutes:
#   1. a fresh venv with this package and the CUDA build of jaxlib (jax[cuda12] or
#      jax[cuda13], chosen from the driver's CUDA version; the wheels bring CUDA itself;
#      needs PyPI), or, with GPU_CHECK_PYTHON, an interpreter that already has CUDA JAX
#      (an image with it preinstalled; nothing is installed, the package runs from here);
#   2. JAX must see the GPU (no silent fallback to the CPU);
#   3. the numerics and equivariance tests on the GPU at "highest" matmul precision (their
#      bounds assume float32 products; a GPU's "default" is TF32);
#   4. a 2-epoch benchmark of the MLP and the CNN (scripts/benchmark.py, ours only);
# then a short summary. Exit 0 only when every step passed; 3 when no GPU is visible
# (nothing is installed then).
#
# Usage: scripts/gpu_check.sh [--dry-run]   (--dry-run: print the plan, install nothing)
# Environment (all optional):
#   GPU_CHECK_VENV    the venv to create (removed first)          [.venv-gpu]
#   GPU_CHECK_OUT     folder for the logs, junit XML, benchmark    [runs/gpu_check]
#   GPU_CHECK_BUDGET  seconds for the whole check                  [480]
#   JAX_VERSION       jax/jaxlib version to install                [0.10.2, the tested one]
#   CUDA_EXTRA        cuda12 or cuda13                             [from nvidia-smi]
#   PYTHON            interpreter for the venv (>= 3.11)           [python3]
#   GPU_CHECK_PYTHON  use this interpreter's JAX (with CUDA) as is: no venv, no install,
#                     PYTHONPATH=this checkout; it needs flax, optax, orbax, absl, chex,
#                     hypothesis, pytest-xdist, scipy, matplotlib  [unset: fresh venv]
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${GPU_CHECK_VENV:-.venv-gpu}
OUT=${GPU_CHECK_OUT:-runs/gpu_check}
BUDGET=${GPU_CHECK_BUDGET:-480}
JAX_VERSION=${JAX_VERSION:-0.10.2}
PYTHON=${PYTHON:-python3}
FMNIST_DIR=${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
TESTS=(tests/test_numerics.py tests/ops tests/layers tests/equivariance tests/test_transforms.py
       tests/test_precision.py)
DRY_RUN=0

die() {  # die CODE MESSAGE: one line on stderr
  echo "gpu_check: error: $2" >&2
  exit "$1"
}

for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    *) die 2 "unexpected argument '$arg'; usage: scripts/gpu_check.sh [--dry-run]" ;;
  esac
done
[[ "$BUDGET" =~ ^[0-9]+$ ]] || die 2 "GPU_CHECK_BUDGET=$BUDGET: expected whole seconds"

# ---------------------------------------------------------------- is a GPU visible?
if [[ "${CUDA_VISIBLE_DEVICES-unset}" == "" || "${CUDA_VISIBLE_DEVICES-}" == "-1" ]]; then
  die 3 "no NVIDIA GPU visible: CUDA_VISIBLE_DEVICES='${CUDA_VISIBLE_DEVICES-}' hides them; nothing was installed"
fi
if ! command -v nvidia-smi >/dev/null 2>&1; then
  die 3 "no NVIDIA GPU visible: nvidia-smi is not on PATH (no NVIDIA driver); nothing was installed"
fi
if ! GPUS=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null) \
    || [[ -z "$GPUS" ]]; then
  die 3 "no NVIDIA GPU visible: nvidia-smi lists none; nothing was installed"
fi
DRIVER_CUDA=$(nvidia-smi 2>/dev/null | grep -o 'CUDA Version: [0-9.]*' | grep -o '[0-9.]*$' || true)
if [[ -z "${CUDA_EXTRA:-}" ]]; then
  # jax[cuda13] needs a driver that supports CUDA 13; jax[cuda12] runs on CUDA 12 drivers.
  if [[ "${DRIVER_CUDA%%.*}" =~ ^[0-9]+$ && "${DRIVER_CUDA%%.*}" -ge 13 ]]; then
    CUDA_EXTRA=cuda13
  else
    CUDA_EXTRA=cuda12
  fi
fi
[[ "$CUDA_EXTRA" == cuda12 || "$CUDA_EXTRA" == cuda13 ]] \
  || die 2 "CUDA_EXTRA=$CUDA_EXTRA: expected cuda12 or cuda13"

DATASET=synthetic_bars
if [[ -f "$FMNIST_DIR/train-images-idx3-ubyte.gz" ]]; then
  DATASET=fashion_mnist
fi
PY="$VENV/bin/python"
PIP_INSTALL=("$PY" -m pip install -q -e ".[dev]" "jax[$CUDA_EXTRA]==$JAX_VERSION")
JAX_BUILD="jax[$CUDA_EXTRA]==$JAX_VERSION"
if [[ -n "${GPU_CHECK_PYTHON:-}" ]]; then
  command -v "$GPU_CHECK_PYTHON" >/dev/null 2>&1 \
    || die 2 "GPU_CHECK_PYTHON=$GPU_CHECK_PYTHON: no such interpreter"
  PY=$GPU_CHECK_PYTHON
  VENV="(none: $PY as is)"
  PIP_INSTALL=(true)
  JAX_BUILD="the JAX of $PY"
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
PYTEST=("$PY" -m pytest -q -p no:cacheprovider -m "not slow" -n 8 "${TESTS[@]}")
BENCH=("$PY" scripts/benchmark.py --frameworks=ours "--models=mlp,cnn" --depths=1 --epochs=2
       --dataset="$DATASET" --out="$OUT/benchmark")

if [[ "$DRY_RUN" == 1 ]]; then
  echo "gpu(s): $GPUS"
  echo "driver CUDA version: ${DRIVER_CUDA:-unknown}; jax: $JAX_BUILD"
  echo "venv: $VENV; install: ${PIP_INSTALL[*]}"
  echo "tests: ${PYTEST[*]}"
  echo "benchmark (dataset $DATASET): ${BENCH[*]}"
  echo "budget: ${BUDGET} s; output: $OUT"
  exit 0
fi

# ---------------------------------------------------------------- the check
mkdir -p "$OUT"
SUMMARY=()
FAILED=0
START=$SECONDS

# step NAME RESERVE CMD...: runs CMD with what is left of the budget minus RESERVE seconds
# (kept for the later steps), its output in $OUT/NAME.log; records status and time.
step() {
  local name=$1 reserve=$2
  shift 2
  local left=$((BUDGET - (SECONDS - START) - reserve))
  if ((left < 10)); then
    SUMMARY+=("$(printf '%-10s skipped (budget spent)' "$name")")
    FAILED=1
    return 1
  fi
  local t0=$SECONDS rc=0
  timeout --kill-after=10 "$left" "$@" >"$OUT/$name.log" 2>&1 || rc=$?
  local status=ok
  if ((rc == 124 || rc == 137)); then
    status="TIMED OUT after ${left} s"
  elif ((rc != 0)); then
    status="FAILED (exit $rc; see $OUT/$name.log)"
  fi
  SUMMARY+=("$(printf '%-10s %-40s %4d s' "$name" "$status" $((SECONDS - t0)))")
  if [[ "$status" != ok ]]; then
    FAILED=1
    tail -n 20 "$OUT/$name.log" >&2
    return 1
  fi
}

# shellcheck disable=SC2329  # invoked by the EXIT trap
report() {
  echo
  echo "== gpu_check summary ($((SECONDS - START)) s of ${BUDGET} s) =="
  echo "gpu(s): $GPUS (driver CUDA ${DRIVER_CUDA:-unknown}); $JAX_BUILD"
  printf '%s\n' "${SUMMARY[@]}"
  if [[ -f "$OUT/tests.log" ]]; then
    echo "tests: $(grep -E '(passed|failed|error)' "$OUT/tests.log" | tail -n 1)"
  fi
  if [[ -f "$OUT/benchmark.md" ]]; then
    echo "benchmark ($DATASET, 2 epochs, batch 256; the 2nd epoch timed):"
    cat "$OUT/benchmark.md"
  fi
  if ((FAILED)); then echo "gpu_check: FAILED"; else echo "gpu_check: passed"; fi
}
trap report EXIT

export XLA_PYTHON_CLIENT_PREALLOCATE=false  # several test workers share the GPU
if [[ -z "${GPU_CHECK_PYTHON:-}" ]]; then
  rm -rf "$VENV"
  step venv 300 "$PYTHON" -m venv "$VENV" || exit 1
  step install 200 "${PIP_INSTALL[@]}" || exit 1
fi
step backend 190 env JAX_PLATFORMS=cuda "$PY" -c \
  'import jax; assert jax.default_backend() == "gpu", jax.devices(); print("jax", jax.__version__, jax.devices())' \
  || exit 1
SUMMARY+=("           $(tail -n 1 "$OUT/backend.log")")
# The tests' bounds are float32 bounds (tests/numerics.py): they run at "highest" precision,
# except where a test sets its own (tests/test_precision.py checks what "default" does).
step tests 90 env JAX_PLATFORMS=cuda JAX_DEFAULT_MATMUL_PRECISION=highest "${PYTEST[@]}" || true
step benchmark 0 env JAX_PLATFORMS=cuda "${BENCH[@]}" || true
exit "$FAILED"
