#!/usr/bin/env bash
# One prepared GPU session (a lent H100/H200 through the device tool; issues 11 and 12). From the
# repository root, on a machine whose python3 has torch with CUDA and Lightning:
#   OUT=dir BUDGET=560 bash benchmarks/gpu_session.sh
# 1. `segclr bench --device cuda` (fp32, bf16, channels_last), alone on the GPU;
# 2. a study's unfinished cells (GRID, default R2's CPU grid), several at once (benchmarks/gpu_pool.py),
#    until BUDGET seconds after the start; each finished cell's record names the GPU that trained it;
# 3. packs the new cell records, the benchmark output and every log into OUT (at most 8 files come back).
# First run (H200, 2026-11-27, docs/performance.md "GPU"): the bench needed more than 150 s (its last
# worker was cut), and 12 and 20 cells at once gave the same ~5 cells/min (16 CPU cores set the pace).
# torch.compile per block did not help there, so its rows are left to `--variants fp32,fp32-c`.
# Missing pure-Python packages (monai, nibabel) travel as wheels in .whl/ (see docs/performance.md).
# Each step is bounded by its own timeout, so one failing step leaves the others' results.
set -u
OUT=${OUT:-runs/gpu_session}
BUDGET=${BUDGET:-560}
WORKERS=${WORKERS:-14}
GRID=${GRID:-configs/experiments/r2_realistic_cpu.yaml}
REPORT=${REPORT:-docs/results/$(basename "$GRID" .yaml)}
T0=$(date +%s)
say() { echo "[session $(( $(date +%s) - T0 )) s] $*"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
mkdir -p "$OUT" /tmp/session/logs
touch /tmp/session/start

if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
python3 -c "import torch, lightning, monai, segclr.cli; print('torch', torch.__version__, 'lightning', lightning.__version__, 'GPU', torch.cuda.get_device_name(0))" || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv > "$OUT/gpu.txt"
nproc >> "$OUT/gpu.txt"

say "bench: fp32, bf16, channels_last"
timeout -k 5 240 python3 -m segclr.cli bench --device cuda --no-sweep --steps 10 --rounds 2 --out /tmp/session/bench \
    > /tmp/session/logs/bench.log 2>&1
echo "exit $?" >> /tmp/session/logs/bench.log; pkill -f "segclr.bench --_worker"; tail -n 3 /tmp/session/logs/bench.log

say "study cells until $BUDGET s (deadline for the pool: $(( $(left) - 25 )) s from now)"
python3 benchmarks/gpu_pool.py "$GRID" \
    --report-dir "$REPORT" --workers "$WORKERS" --deadline-s $(( $(left) - 25 )) \
    --min-cell-s 130 --scratch /tmp/session/pool \
    --first supervised upper_bound segclr_dg segclr_uda_ch_a multi_domain segclr_uda_con0 \
    2>&1 | tee /tmp/session/logs/pool.log

say "packing"
find docs/results -name '*.json' -newer /tmp/session/start > /tmp/session/new_cells.txt
tar czf "$OUT/cells.tgz" -T /tmp/session/new_cells.txt
tar czf "$OUT/bench.tgz" -C /tmp/session bench 2>/dev/null
cp /tmp/session/pool/logs/*.log /tmp/session/logs/ 2>/dev/null
tar czf "$OUT/logs.tgz" -C /tmp/session logs
say "done: $(wc -l < /tmp/session/new_cells.txt) new cell records"
