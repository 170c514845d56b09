#!/usr/bin/env bash
# The one prepared GPU run (GPU_WORK.md): about 9 minutes on one H200, all of it in one
# `device` call so that the start-up is paid once.
#
#   run(command="bash benchmarks/gpu.sh", timeout_s=600, carry=[".whl", "runs/ns64"])
#
# 1. installs geodiff into the device's Python (its own CUDA torch; the other wheels from
#    a carried wheelhouse `.whl/`, made here with `pip download -d .whl -e .[test]`),
# 2. runs the GPU tests (`pytest -m gpu`) and stops there if one fails,
# 3. continues (or starts) the 64² non-stationary prior in bf16 for TRAIN_S seconds from
#    the carried run directory runs/ns64, checkpointing every 250 steps,
# 4. times unconditional and posterior sampling on the GPU and on the CPU of the same
#    machine (ratios in the same run), and the SPDE prior's simulation (its sparse
#    factorisations use the machine's CPU cores, one thread per parameter draw),
# 5. writes under $OUT what must come back: the log, the timings, and the run directory
#    as a tar in parts of at most 15 MiB (the device returns 8 files of 16 MiB at most).
#    Reassemble here with `cat $FILES/ns64.tar.part-* | tar x`, then rerun.
#
# DRY=1 runs every stage on the CPU with tiny settings (a syntax and plumbing check).
set -uo pipefail
OUT=${OUT:-runs/gpu-out}
TRAIN_S=${TRAIN_S:-270}  # 330 before step 4b (SPDE simulation, at most 60 s) was added
RUN=runs/ns64
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu.log") 2>&1
started=$(date +%s)
left() { echo $((540 - $(date +%s) + started)); }

echo "== 1. install ($(date -u))"
if [ -z "${DRY:-}" ]; then
    pip install -q --no-index --find-links .whl -e ".[test]" || pip install -q -e ".[test]"
fi
python -c "import torch, geodiff; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
device=cuda
steps=30000
grid=64
[ -n "${DRY:-}" ] && { device=cpu; steps=4; grid=16; TRAIN_S=60; RUN=runs/ns64-dry; }

echo "== 2. GPU tests first: nothing else runs on a device path that fails them"
if [ -z "${DRY:-}" ]; then
    timeout 120 python -m pytest -q -m gpu -p no:cacheprovider \
        || { echo "GPU tests failed: stopping before training and timings"; exit 1; }
fi

echo "== 3. train the ${grid}² non-stationary prior for at most ${TRAIN_S} s ($(left) s left)"
timeout "$TRAIN_S" geodiff train --prior nonstationary-anisotropy --grid "$grid" \
    --network small --train-steps "$steps" --batch-size 128 --fields-per-theta 8 --lr 5e-4 \
    --lr-warmup 200 --ema 0.999 --checkpoint-every 250 --validate-every 2000 \
    --oracle-components 8 --device "$device" --quiet --out "$RUN"
echo "train exit $? (124: stopped by the time box, resumes next time)"

echo "== 4. sampling and posterior timings ($(left) s left)"
timeout 120 python - "$OUT/timings.json" "$device" "$RUN" <<'PY'
import json, sys, time
import numpy as np, torch
from geodiff.diffusion.model import load_model
from geodiff.observe import Observations
from geodiff.posterior import diffusion_posterior

out, device, run_dir = sys.argv[1:4]


def fast(model, obs):  # README's fast settings: 13 steps from sigma 10, no Jacobian, bf16
    model.denoiser.set_precision("bfloat16")
    try:
        return diffusion_posterior(model, obs, samples=100, steps=13, cg_iterations=0,
                                   start_sigma=10.0)
    finally:
        model.denoiser.set_precision("float32")


rows = {}
for dev in dict.fromkeys([device, "cpu"]):
    model = load_model(run_dir, dev)
    rng = np.random.default_rng(0)
    obs = Observations.at_points(rng.uniform(0.02, 0.98, (30, 2)), rng.standard_normal(30), 0.1)
    for label, run in {
        "sample 100 (dpm2m 50)": lambda: model.sample(100, steps=50),
        "posterior 100 (mmps)": lambda: diffusion_posterior(model, obs, samples=100),
        "posterior 100 (mmps fast settings, bfloat16)": lambda: fast(model, obs),
    }.items():
        run()  # warm-up (kernels, caches)
        if dev == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        run()
        if dev == "cuda":
            torch.cuda.synchronize()
        rows[f"{label} on {dev}"] = time.perf_counter() - t
json.dump(rows, open(out, "w"), indent=1)
print(json.dumps(rows, indent=1))
PY

echo "== 4b. SPDE simulation on this machine's CPU cores, fields moved to the GPU ($(left) s left)"
sizes="256 512"
[ -n "${DRY:-}" ] && sizes="32"
timeout 60 python - "$OUT/spde.json" "$device" $sizes <<'PY'
import json, sys, time
from geodiff import simulate
from geodiff.fields.config import load_prior

out, device = sys.argv[1:3]
prior, rows = load_prior("spde-anisotropy"), {}
for size in map(int, sys.argv[3:]):
    grid = prior.window((size, size))
    for per in (1, 8):
        n = 64 if size == 256 else 16
        simulate(prior, grid, 2, seed=0, fields_per_theta=per, device=device)  # warm-up
        t = time.perf_counter()
        simulate(prior, grid, n, seed=1, fields_per_theta=per, device=device)
        rows[f"{size}^2, {per} per theta (fields/s)"] = n / (time.perf_counter() - t)
json.dump(rows, open(out, "w"), indent=1)
print(json.dumps(rows, indent=1))
PY

echo "== 5. results under $OUT"
tail -3 "$RUN/metrics.jsonl" > "$OUT/metrics-tail.jsonl" 2>/dev/null
tar cf - -C "$(dirname "$RUN")" "$(basename "$RUN")" | split -b 15m - "$OUT/ns64.tar.part-"
ls -la "$OUT"
echo "done in $(( $(date +%s) - started )) s"
