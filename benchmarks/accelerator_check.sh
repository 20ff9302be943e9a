#!/usr/bin/env bash
# The benchmark and the engine's core tests on whatever accelerator JAX finds (issue 5's GPU check), with
# jaxsgd from this checkout (no install: a GPU machine's own JAX is used as it is).
#
#   benchmarks/accelerator_check.sh [OUTDIR]      # OUTDIR default: accelerator_check/
#
# Each step has its own time limit, so one that hangs cannot take the others' time; logs and the JSON
# reports land in OUTDIR. PY picks the interpreter (default python3).
set -u
OUTDIR=${1:-accelerator_check}
PY=${PY:-python3}
mkdir -p "$OUTDIR"
export PYTHONPATH="$(pwd)${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv 2>/dev/null | tee "$OUTDIR/gpu.txt"
"$PY" -c "import jax, numpy; print('jax', jax.__version__, 'numpy', numpy.__version__, jax.devices())" | tee -a "$OUTDIR/gpu.txt"

# 1. the benchmark, unchanged (its default workload), with the big case
timeout "${BENCH_LIMIT:-300}" "$PY" benchmarks/bench.py --big --out "$OUTDIR/bench.json" 2>&1 | tee "$OUTDIR/bench.log"
echo "bench exit ${PIPESTATUS[0]}"

# 2. the engine's and the timeline's tests on the accelerator (the two-CPU-device test needs CPUs);
#    in parallel where pytest-xdist is installed, each process taking GPU memory as it needs it
WORKERS=()
"$PY" -c "import xdist" 2>/dev/null && WORKERS=(-n "${TEST_WORKERS:-6}")
XLA_PYTHON_CLIENT_PREALLOCATE=false timeout "${TEST_LIMIT:-120}" "$PY" -m pytest tests/test_engine.py \
  tests/test_timeline.py tests/test_problems.py -k "not device_count" "${WORKERS[@]}" -p no:cacheprovider \
  >"$OUTDIR/tests.log" 2>&1
echo "tests exit $?"; tail -25 "$OUTDIR/tests.log"

# 3. the same workload with replicas enough to fill a GPU
if [ -n "${WIDE_REPLICAS:-}" ]; then
  timeout "${WIDE_LIMIT:-100}" "$PY" benchmarks/bench.py --replicas "$WIDE_REPLICAS" --no-scaling --no-memory --repeat 3 \
    --out "$OUTDIR/bench_wide.json" >"$OUTDIR/bench_wide.log" 2>&1
  echo "wide bench exit $?"; grep -A8 "^method" "$OUTDIR/bench_wide.log"
fi
