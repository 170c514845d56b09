"""Write observations of one exact prior field as a CSV (x, y, value, noise_sd).

    python benchmarks/make_obs.py --prior spde-anisotropy --grid 256 --n-obs 1000 \\
        --noise-sd 0.1 --seed 7 --out obs.csv

The field is drawn on ``prior.window((grid, grid))`` (for a translation-invariant prior,
``grid`` cells of its ``cell_size``; else the prior's domain), the points uniformly over
it, and the values are bilinear reads plus N(0, noise_sd²) noise. Used by
``docs/make_figures.sh`` and ``benchmarks/gpu.sh`` for the README's 256² posterior map.
"""

from __future__ import annotations

import argparse

import numpy as np

import geodiff


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", default="spde-anisotropy")
    parser.add_argument("--grid", type=int, default=256)
    parser.add_argument("--n-obs", type=int, default=1000)
    parser.add_argument("--noise-sd", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    prior = geodiff.load_prior(args.prior)
    grid = prior.window((args.grid, args.grid))
    field = geodiff.simulate(prior, grid, 1, seed=args.seed).fields[0]
    rng = np.random.default_rng(args.seed)
    (x0, x1), (y0, y1) = grid.extent
    points = np.column_stack([rng.uniform(x0, x1, args.n_obs), rng.uniform(y0, y1, args.n_obs)])
    values = grid.interpolate(field.double(), points).numpy()
    values = values + args.noise_sd * rng.standard_normal(args.n_obs)
    geodiff.Observations.at_points(points, values, args.noise_sd).to_csv(args.out)


if __name__ == "__main__":
    main()
