#!/usr/bin/env bash
# One prepared GPU session (a lent H100/H200 through the device tool; issues 11 and 12). From the
# repository root, on a machine whose python3 has torch with CUDA and Lightning:
#   OUT=dir BUDGET=560 bash benchmarks/gpu_session.sh
# 1. `segclr bench --device cuda` (fp32, bf16, channels_last), alone on the GPU (BENCH=0 skips it);
# 2. the unfinished cells of one or more grids (GRIDS, space-separated; default R2's CPU grid), one
#    benchmarks/gpu_pool.py per grid, all at once, WORKERS cells each (an entry grid.yaml:N runs N),
#    until BUDGET seconds after the start; each finished cell's record names the GPU that trained it.
#    FIRST: rows started first; ONLY: the rows to run (shell patterns; default every unfinished cell);
# 3. AFTER: a command on the results, with AFTER_S seconds (default 60) kept for it from the pools'
#    deadline (its output is logs/after.log), e.g. the GPU search's re-scoring at 320 px:
#      AFTER="python3 benchmarks/rescore_cells.py --cells docs/results/quality_search_gpu/cells --runs
#      /tmp/session/pool_quality_search_gpu/runs/*/runs --on validation --methods 'g1*' 'g2*' --min-component-px 320"
# 4. packs the new cell records, the benchmark output, every log and the runs' curves and cards into
#    OUT; MODELS (patterns of <method>__seed<k>) brings those runs' weights too (models.tgz.part-*).
#    At most 8 files come back.
# The quality issue's GPU calls (issue 10) are in configs/experiments/quality_search_gpu.yaml's header.
# First run (H200, 2026-11-27, docs/performance.md "GPU"): the bench needed more than 150 s (its last
# worker was cut), and 12 and 20 cells at once gave the same ~5 cells/min (16 CPU cores set the pace).
# torch.compile per block did not help there, so its rows are left to `--variants fp32,fp32-c`.
# Missing pure-Python packages (monai, nibabel) travel as wheels in .whl/ (see docs/performance.md).
# Each step is bounded by its own timeout, so one failing step leaves the others' results.
set -u
OUT=${OUT:-runs/gpu_session}
BUDGET=${BUDGET:-560}
WORKERS=${WORKERS:-14}
GRIDS=${GRIDS:-${GRID:-configs/experiments/r2_realistic_cpu.yaml}}
BENCH=${BENCH:-1}
ONLY=${ONLY:-}
MODELS=${MODELS:-}
AFTER=${AFTER:-}
AFTER_S=${AFTER_S:-60}
[ -n "$AFTER" ] || AFTER_S=0
FIRST=${FIRST-supervised upper_bound segclr_dg segclr_uda_ch_a multi_domain segclr_uda_con0}
T0=$(date +%s)
say() { echo "[session $(( $(date +%s) - T0 )) s] $*"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)  # absolute: the packing below runs from /tmp/session
rm -rf /tmp/session  # a machine kept warm between calls still has the last call's runs
mkdir -p /tmp/session/logs
touch /tmp/session/start

if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
python3 -c "import torch, lightning, monai, segclr.cli; print('torch', torch.__version__, 'lightning', lightning.__version__, 'GPU', torch.cuda.get_device_name(0))" || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv > "$OUT/gpu.txt"
nproc >> "$OUT/gpu.txt"

if [ "$BENCH" = 1 ]; then
    say "bench: fp32, bf16, channels_last"
    timeout -k 5 240 python3 -m segclr.cli bench --device cuda --no-sweep --steps 10 --rounds 2 --out /tmp/session/bench \
        > /tmp/session/logs/bench.log 2>&1
    echo "exit $?" >> /tmp/session/logs/bench.log; pkill -f "segclr.bench --_worker"; tail -n 3 /tmp/session/logs/bench.log
fi

DEADLINE=$(( $(left) - 25 - AFTER_S ))
say "study cells until $BUDGET s (deadline for the pools: $DEADLINE s from now; $AFTER_S s kept for AFTER): $GRIDS"
set -f  # FIRST and ONLY hold shell patterns for gpu_pool.py, not file names
for entry in $GRIDS; do
    grid=${entry%%:*}; workers=${entry#"$grid"}; workers=${workers#:}; workers=${workers:-$WORKERS}
    name=$(basename "$grid" .yaml)
    # shellcheck disable=SC2086
    python3 benchmarks/gpu_pool.py "$grid" \
        --report-dir "docs/results/$name" --workers "$workers" --deadline-s "$DEADLINE" \
        --min-cell-s 130 --scratch "/tmp/session/pool_$name" --first $FIRST ${ONLY:+--only $ONLY} \
        > "/tmp/session/logs/pool_$name.log" 2>&1 &
done
set +f
wait
for entry in $GRIDS; do cat "/tmp/session/logs/pool_$(basename "${entry%%:*}" .yaml).log"; done
# the first failed cell's log, so that the call's output shows why
first_failed=$(grep -h -m1 "^\[pool\] failed:" /tmp/session/logs/pool_*.log | head -n1 | sed 's/.*(log \(.*\))/\1/')
[ -n "$first_failed" ] && tail -n 25 "$first_failed"

if [ -n "$AFTER" ]; then
    # a command on this session's results before packing, e.g. re-scoring the new cells another way
    if [ "$(left)" -gt 20 ]; then
        say "after: $AFTER"
        timeout -k 5 $(( $(left) - 15 )) bash -c "$AFTER" > /tmp/session/logs/after.log 2>&1
        echo "exit $?" >> /tmp/session/logs/after.log; cat /tmp/session/logs/after.log
    else
        say "after: skipped, $(left) s left" | tee /tmp/session/logs/after.log
    fi
fi

say "packing"
find docs/results -name '*.json' -newer /tmp/session/start > /tmp/session/new_cells.txt
tar czf "$OUT/cells.tgz" -T /tmp/session/new_cells.txt
[ "$BENCH" = 1 ] && tar czf "$OUT/bench.tgz" -C /tmp/session bench 2>/dev/null
for d in /tmp/session/pool*/logs; do cp "$d"/*.log /tmp/session/logs/ 2>/dev/null; done
tar czf "$OUT/logs.tgz" -C /tmp/session logs
( cd /tmp/session && find pool* -path '*/runs/*' \( -name val_curve.csv -o -name metrics.csv -o -name train.json \
    -o -name model_card.json -o -name eval.json \) -print0 | tar czf "$OUT/runs.tgz" --null -T - ) 2>/dev/null
if [ -n "$MODELS" ]; then
    # finished runs' weights (model.safetensors) of the runs (<method>__seed<k>) matching MODELS, up to
    # 45 MiB in all, as parts of at most 15 MiB: with gpu.txt, cells, logs and runs that is at most 7 of
    # the 8 files (16 MiB each, 64 MiB together) that come back from OUT. Here: cat models.tgz.part-* | tar xz
    : > /tmp/session/models.txt
    ( cd /tmp/session && total=0 && files=$(find pool* -path '*/runs/*' -name model.safetensors | sort)
      set -f  # MODELS holds patterns, not file names
      for f in $files; do
          run=$(echo "$f" | cut -d/ -f3)
          keep=0; for p in $MODELS; do case "$run" in $p) keep=1 ;; esac; done
          [ "$keep" = 1 ] || continue
          size=$(stat -c %s "$f")
          if [ $(( total + size )) -le $(( 45 * 1024 * 1024 )) ]; then
              echo "$f" >> /tmp/session/models.txt; total=$(( total + size ))
          else
              echo "[session] weights left out (45 MiB cap): $f"
          fi
      done
      [ -s /tmp/session/models.txt ] && tar czf - -T /tmp/session/models.txt | split -b 15M - "$OUT/models.tgz.part-" )
    say "weights brought back: $(wc -l < /tmp/session/models.txt) model.safetensors files"
fi
say "done: $(wc -l < /tmp/session/new_cells.txt) new cell records"
