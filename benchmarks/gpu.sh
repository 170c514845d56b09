#!/usr/bin/env bash
# The one prepared GPU run (GPU_WORK.md): about 8 minutes on one H200, all of it in one
# `device` call so that the start-up is paid once.
#
#   run(command="bash benchmarks/gpu.sh", timeout_s=600, carry=[".whl"])
#
# 1. makes the device's Python see geodiff (its own CUDA torch; the other packages from a
#    carried wheelhouse `.whl/` of wheels fetched with `pip download --no-deps`, see
#    GPU_WORK.md, installed with --target),
# 2. runs the GPU tests (`pytest -m gpu`) and stops there if one fails,
# 3. the any-size prior (issue 24): MODEL's MMPS posterior draws on the datasets of
#    `bench_any_size.py posterior` at 128² (100 and 1,000 observations), returned as
#    posterior-draws.npz and scored on the CPU with
#    `python benchmarks/bench_any_size.py posterior --draws-file ...`,
# 4. times 100 MMPS draws at 128², 256² and 512² on the GPU and at 128² on this
#    machine's CPU cores (timings.json),
# 5. trains the window model (`conv`, 64² windows of spde-anisotropy) on the GPU for
#    TRAIN_S seconds and returns its metrics (train-metrics.jsonl),
# 6. writes the log under $OUT.
#
# STAGES (default "tests draws timing map train") picks stages 2-5 by name, for a
# session that splits them over two calls. DRY=1 runs every stage on the CPU with tiny
# settings (a syntax and plumbing check).
set -uo pipefail
OUT=${OUT:-runs/gpu-out}
MODEL=${MODEL:-data/spde-anisotropy}
TRAIN_S=${TRAIN_S:-100}
DATASETS=${DATASETS:-50}
DRAWS=${DRAWS:-100}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu.log") 2>&1
started=$(date +%s)
left() { echo $((560 - $(date +%s) + started)); }
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
STAGES=${STAGES:-tests draws timing prior map train}
want() { [[ " $STAGES " == *" $1 "* ]]; }

echo "== 1. packages ($(date -u))"
if [ -z "${DRY:-}" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
python3 -c "import torch, geodiff; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
device=cuda sizes="128 256 512" cpu_draws=10 train_steps=100000 post=128 map=256
prior_sizes="128 256" prior_fields=256
[ -n "${DRY:-}" ] && { device=cpu; sizes="64"; DATASETS=1; DRAWS=2; cpu_draws=2; TRAIN_S=30;
                       train_steps=3; post=64; map=64; prior_sizes=""; prior_fields=20; }

echo "== 2. GPU tests first: nothing else runs on a device path that fails them"
if [ -z "${DRY:-}" ] && want tests; then
    timeout 150 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py \
        || { echo "GPU tests failed: stopping before the benchmarks"; exit 1; }
fi

echo "== 3. posterior draws at ${post}², $DATASETS datasets x (100, 1000) observations ($(left) s left)"
want draws && timeout 180 python3 - "$OUT/posterior-draws.npz" "$device" "$MODEL" "$DATASETS" "$DRAWS" "$post" <<'PY'
import sys
sys.path.insert(0, "benchmarks")
from bench_any_size import DEFAULT, make_posterior_draws
from geodiff.diffusion.model import load_model

out, device, model_path = sys.argv[1:4]
datasets, draws, size = map(int, sys.argv[4:7])
model = load_model(model_path, device).on_grid((size, size))
make_posterior_draws(model, datasets, draws, 0, dict(DEFAULT, batch_size=draws), save=out)
PY
echo "posterior draws exit $?"

echo "== 4. seconds per 100 MMPS draws by grid size, GPU and this machine's CPU ($(left) s left)"
want timing && timeout 200 python3 - "$OUT/timings.json" "$device" "$MODEL" "$cpu_draws" $sizes <<'PY'
import json, sys, time
import torch
sys.path.insert(0, "benchmarks")
from bench_any_size import DEFAULT, FAST, time_posteriors
from geodiff.diffusion.model import load_model

out, device, model_path, cpu_draws = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sizes = [int(s) for s in sys.argv[5:]]
rows = []
model = load_model(model_path, device)
settings = {"fast": dict(FAST, batch_size=100), "default": dict(DEFAULT, batch_size=100)}
time_posteriors(model, sizes[:1], [100], 4, settings)  # warm-up: kernels, caches
n = 100 if device == "cuda" else 2
rows += time_posteriors(model, sizes[:2], [100], n, settings)
rows += time_posteriors(model, sizes[2:], [100], n, {"fast": settings["fast"]})
json.dump(rows, open(out, "w"), indent=1)
big = 256 if device == "cuda" else sizes[0]
rows += time_posteriors(model, [big], [1000], 100 if device == "cuda" else 2,
                        {"fast": settings["fast"]})
torch.set_num_threads(16)
cpu = load_model(model_path, "cpu")
rows += time_posteriors(cpu, sizes[:1], [100], cpu_draws, {"fast": FAST})
json.dump(rows, open(out, "w"), indent=1)
PY
echo "timings exit $?"

echo "== 4b. the README's ${map}² posterior map ($DRAWS draws), as docs/make_figures.sh ($(left) s left)"
want map && python3 benchmarks/make_obs.py --grid "$map" --n-obs 1000 --out "$OUT/obs256.csv" &&
timeout 90 python3 -m geodiff predict --model "$MODEL" --grid "$map" --obs "$OUT/obs256.csv" \
    --draws "$DRAWS" --batch-size 100 --device "$device" --out /tmp/pred256.csv \
    --plot "$OUT/predict256.png" --overwrite --quiet
echo "map exit $?"

echo "== 4a. the prior at the window, 128² and 256² against exact simulations ($(left) s left)"
want prior && timeout 150 python3 benchmarks/bench_any_size.py prior --model "$MODEL" \
    --device "$device" --sizes $prior_sizes --fields "$prior_fields"
echo "prior exit $?"
want prior && cp BENCHMARKS.md "$OUT/BENCHMARKS-gpu.md"

echo "== 5. train the window model on the GPU for $TRAIN_S s ($(left) s left)"
want train && timeout "$TRAIN_S" python3 -m geodiff train --prior spde-anisotropy --grid 64 --network conv \
    --train-steps "$train_steps" --batch-size 128 --fields-per-theta 8 --lr 5e-4 --lr-warmup 200 \
    --checkpoint-every 500 --validate-every 100000 --oracle-components 4 --device "$device" \
    --quiet --out runs/spde64-gpu
echo "train exit $? (124: stopped by the time box)"
cp runs/spde64-gpu/metrics.jsonl "$OUT/train-metrics.jsonl" 2>/dev/null
cp runs/spde64-gpu/model.json "$OUT/gpu-model.json" 2>/dev/null
cp runs/spde64-gpu/model.safetensors "$OUT/gpu-model.safetensors" 2>/dev/null

echo "== 6. results under $OUT"
ls -la "$OUT"
echo "done in $(( $(date +%s) - started )) s"
