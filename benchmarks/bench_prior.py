"""How good is a trained diffusion prior? Denoising error against the oracle, variograms,
power spectra, a classifier two-sample test, and sampling throughput.

    python benchmarks/bench_prior.py --model data/stationary-matern-32 [--n 1000]

Writes the section ``prior-quality-<model name>`` of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _report import update_section  # benchmarks/ is on sys.path when run as a script

from geodiff.diffusion.model import load_model
from geodiff.diffusion.validation import denoising_mse, validation_steps
from geodiff.fields.simulate import simulate
from geodiff.metrics import (
    classifier_two_sample_test,
    compare_spectra,
    compare_variograms,
    directional_variograms,
    radial_power_spectrum,
)
from geodiff.tables import markdown_table


def _training_summary(run: Path) -> str:
    records = (
        [json.loads(x) for x in (run / "metrics.jsonl").open()]
        if (run / "metrics.jsonl").exists()
        else []
    )
    speeds = [r["fields_per_s"] for r in records if "fields_per_s" in r]
    losses = [r["loss"] for r in records if "loss" in r]
    if not speeds:
        return "training metrics not found beside the model"
    return (
        f"training throughput: median {np.median(speeds):.0f} fields/s over "
        f"{len(speeds)} logging windows; final loss {np.mean(losses[-5:]):.4f}"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--n", type=int, default=1000, help="samples for the distribution tests")
    parser.add_argument("--oracle-components", type=int, default=128)
    parser.add_argument("--n-mse", type=int, default=512, help="fields for the MSE curve")
    parser.add_argument(
        "--samplers", default="dpm2m:50,ddim:50", help="comma-separated sampler:steps to assess"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(args.model, device)
    prior, grid = model.prior, model.grid
    out = [
        f"Model `{args.model}` (step {model.info.get('step')}, code "
        f"{model.info.get('code_revision')}, {model.denoiser.n_parameters / 1e6:.2f} M "
        f"parameters, {model.denoiser.prediction}-prediction, "
        f"{model.schedule.kind} schedule T = {model.schedule.steps}), prior "
        f"{prior.name} on a {grid.shape[0]}×{grid.shape[1]} grid, on {device}.",
        "",
        "- " + _training_summary(args.model if args.model.is_dir() else args.model.parent),
    ]

    # 1. denoising MSE against the exact mixture oracle, on fields drawn from that mixture
    started = time.perf_counter()
    oracle = model.oracle(args.oracle_components, seed=args.seed)
    fields = oracle.sample(args.n_mse, seed=args.seed).float()
    steps = validation_steps(model.schedule)
    floor = denoising_mse(oracle, fields, model.schedule, steps, seed=args.seed)
    net = denoising_mse(
        model.denoiser, fields, model.schedule, steps, seed=args.seed, device=device
    )
    ratio = (net / floor).numpy()
    sigma = model.schedule.sigma(steps).numpy()
    print("MSE ratios", np.round(ratio, 3), f"({time.perf_counter() - started:.0f} s)", flush=True)
    out += [
        "",
        f"**Denoising MSE / oracle MSE** ({args.n_mse} fields from a "
        f"{args.oracle_components}-component oracle mixture; worst {ratio.max():.3f}):",
        "",
        markdown_table(
            ["σ", *(f"{s:.3g}" for s in sigma)],
            [
                ["step t", *(str(int(t)) for t in steps)],
                ["network MSE", *(f"{m:.4g}" for m in net.numpy())],
                ["oracle MSE", *(f"{m:.4g}" for m in floor.numpy())],
                ["ratio", *(f"{r:.3f}" for r in ratio)],
            ],
        ),
    ]

    # 2. distribution tests of unconditional samples against exact simulations
    reference = simulate(prior, grid, args.n, seed=10_000 + args.seed).fields
    control = simulate(prior, grid, args.n, seed=20_000 + args.seed).fields
    ref_vario, ref_spec = directional_variograms(reference), radial_power_spectrum(reference)
    rows = []
    cases = [("exact simulation (control)", None, None)] + [
        (c.split(":")[0], c.split(":")[0], int(c.split(":")[1])) for c in args.samplers.split(",")
    ]
    for name, sampler, k in cases:
        if sampler is None:
            fields, per_s = control, float("nan")
        else:
            started = time.perf_counter()
            fields = model.sample(args.n, steps=k, sampler=sampler, seed=args.seed)
            per_s = args.n / (time.perf_counter() - started)
            name = f"{'DPM-Solver++(2M)' if sampler == 'dpm2m' else sampler.upper()}, {k} steps"
        vario = compare_variograms(directional_variograms(fields), ref_vario)
        spec = compare_spectra(radial_power_spectrum(fields), ref_spec)
        c2st = classifier_two_sample_test(fields, reference, seed=args.seed, device=device)
        sd_ratio = float(fields.double().std() / reference.double().std())
        rows.append((name, per_s, sd_ratio, vario, spec, c2st))
        print(name, f"{per_s:.1f} fields/s", f"AUC {c2st.auc:.3f}", flush=True)
    out += [
        "",
        f"**Unconditional samples against exact simulations** ({args.n} of each; the "
        "control row compares two independent sets of exact simulations, the noise floor "
        "of every column). Variogram and spectrum columns: largest |z| of the "
        "difference of mean curves over 4 directions × lags (variograms) or wavenumbers "
        "(spectra), and the largest relative difference of the variogram. Classifier: "
        f"small ResNet trained on 70 %, ROC AUC on the held-out 30 % (null sd "
        f"{rows[0][5].auc_se:.3f}).",
        "",
    ]
    table = []
    for name, per_s, sd_ratio, vario, spec, c2st in rows:
        speed = "—" if math.isnan(per_s) else f"{per_s:.1f}"
        table.append(
            [
                name,
                speed,
                f"{sd_ratio:.3f}",
                f"{vario.max_abs_z:.1f}",
                f"{vario.max_relative_difference:.3f}",
                f"{spec.max_abs_z:.1f}",
                f"{c2st.auc:.3f}",
            ]
        )
    header = [
        "samples",
        "fields/s",
        "sd ratio",
        "variogram max abs z",
        "variogram max rel. diff",
        "spectrum max abs z",
        "classifier AUC",
    ]
    out.append(markdown_table(header, table))
    cmd = "python benchmarks/bench_prior.py " + " ".join(sys.argv[1:])
    name = (args.model if args.model.is_dir() else args.model.parent).name
    path = update_section(
        f"prior-quality-{name}", f"Prior quality: {name}", cmd, "\n".join(out) + "\n"
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
