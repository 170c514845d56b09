#!/usr/bin/env bash
# Regenerate every figure of the README from the commands its captions name.
#
#   bash docs/make_figures.sh            # about 4 minutes on a 2-core CPU
#
# Each figure is written under runs/figures/ by the command in its caption, then copied
# to docs/. The Meuse figure comes from `python examples/meuse.py` (see its docstring).
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/figures
mkdir -p "$out"

echo "== docs/demo.png: geodiff demo"
geodiff demo --out "$out/demo" --quiet
cp "$out/demo/maps.png" docs/demo.png

echo "== docs/simulate.png: geodiff simulate"
geodiff simulate --prior nonstationary-anisotropy --grid 64 --n 16 --out "$out/ns.zarr" \
    --plot "$out/simulate.png" --quiet
cp "$out/simulate.png" docs/simulate.png

echo "== docs/spde.png: geodiff simulate (the SPDE prior, 64 x 64 cells: a 0.4 MB figure)"
geodiff simulate --prior spde-anisotropy --grid 64 --n 4 --out "$out/spde.zarr" \
    --plot "$out/spde.png" --quiet
cp "$out/spde.png" docs/spde.png

echo "== docs/quickstart.png: geodiff sample"
geodiff sample --model data/stationary-matern-32 --n 16 --out "$out/samples.nc" \
    --plot "$out/quickstart.png" --overwrite --quiet
cp "$out/quickstart.png" docs/quickstart.png

echo "== docs/predict.png: geodiff predict, given obs.csv written from one prior field"
python - "$out/obs.csv" <<'PY'
import sys

import numpy as np

import geodiff

prior = geodiff.load_prior("stationary-matern")
grid = geodiff.Grid.square(32, prior.domain)
field = geodiff.simulate(prior, grid, 1, seed=7).fields[0]
rng = np.random.default_rng(7)
points = rng.uniform(0.02, 0.98, (30, 2))
values = grid.interpolate(field, points).numpy() + 0.1 * rng.standard_normal(30)
geodiff.Observations.at_points(points, values, 0.1).to_csv(sys.argv[1])
PY
geodiff predict --model data/stationary-matern-32 --obs "$out/obs.csv" --noise-sd 0.1 \
    --draws 100 --out "$out/pred.csv" --plot "$out/predict.png" --overwrite --quiet
cp "$out/predict.png" docs/predict.png
echo "== docs/predict256.png: geodiff predict on a 256 x 256 window of the any-size prior"
echo "   (100 draws: about 10 min on a 2-core CPU; benchmarks/gpu.sh makes it on the GPU)"
python benchmarks/make_obs.py --prior spde-anisotropy --grid 256 --n-obs 1000 --noise-sd 0.1 \
    --seed 7 --out "$out/obs256.csv"
geodiff predict --model spde-anisotropy --grid 256 --obs "$out/obs256.csv" --draws 100 \
    --out "$out/pred256.csv" --plot "$out/predict256.png" --overwrite --quiet
cp "$out/predict256.png" docs/predict256.png
echo "done: docs/{demo,simulate,spde,quickstart,predict,predict256}.png"
