"""All plotting; matplotlib is imported inside the functions only."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from geodiff.io import atomic_write

__all__ = [
    "figure_path",
    "plot_demo",
    "plot_denoising_mse",
    "plot_model_samples",
    "plot_prediction",
    "plot_samples",
    "plot_simulation",
    "plot_store",
]

_MAP_TITLES = {
    "length_scale": "length scale ℓ(s)",
    "anis_ratio": "anisotropy ratio r(s)",
    "angle": "angle α(s) [rad]",
    "variance": "variance σ²(s)",
}


def figure_path(plot, out) -> Path:
    """Where a command's ``--plot`` goes: ``OUT`` with ``.png`` (``plot is True``) or ``plot``."""
    return Path(out).with_suffix(".png") if plot is True else Path(plot)


def _ellipses(ax, prior, theta_one: dict, extent, n: int = 5):
    """Draw local correlation ellipses (axes ∝ ℓ and rℓ, at angle α) at n x n points.

    Glyphs share one scale per panel, the longest axis filling about one cell.
    """
    from matplotlib.patches import Ellipse

    (x0, x1), (y0, y1) = extent
    dx, dy = (x1 - x0) / n, (y1 - y0) / n
    xs, ys = x0 + dx * (np.arange(n) + 0.5), y0 + dy * (np.arange(n) + 0.5)
    pts = np.array([(x, y) for y in ys for x in xs])
    local = prior.local_parameters(theta_one, pts)
    scale = 0.9 * min(dx, dy) / float(local["length_scale"].max())
    for k, (x, y) in enumerate(pts):
        ell = scale * float(local["length_scale"][0, k])
        ratio = float(local["anis_ratio"][0, k])
        angle = math.degrees(float(local["angle"][0, k]))
        ax.add_patch(
            Ellipse(
                (x, y), ell, ratio * ell, angle=angle, fill=False, lw=1.0, ec="white", alpha=0.9
            )
        )


def plot_simulation(sim, prior, path, *, n_show: int = 4, title: str | None = None) -> Path:
    """Fields beside their parameter maps, one row per field.

    Parameters
    ----------
    sim : Simulation
        Fields (n, H, W) with their ``theta`` and ``maps``.
    prior : GRFPrior
        The prior that made them (for the local correlation ellipses).
    path : str or Path
        Output image (PNG).
    n_show : int
        Number of fields (rows) to draw.

    Returns
    -------
    Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_show = min(n_show, len(sim))
    names = list(sim.maps)
    cols = 1 + len(names)
    fig, axes = plt.subplots(n_show, cols, figsize=(3.0 * cols, 2.8 * n_show), squeeze=False)
    (x0, x1), (y0, y1) = sim.grid.extent
    extent = (x0, x1, y0, y1)
    for row in range(n_show):
        theta_one = {k: v[row : row + 1] for k, v in sim.theta.items()}
        ax = axes[row, 0]
        im = ax.imshow(sim.fields[row].numpy(), origin="lower", extent=extent, cmap="RdBu_r")
        _ellipses(ax, prior, theta_one, sim.grid.extent)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        label = f"field {int(sim.index[row])}"
        if prior.is_stationary:
            t = {k: float(v[row]) for k, v in sim.theta.items()}
            label += (
                f"\nℓ={t['length_scale']:.3g} r={t['anis_ratio']:.2f} "
                f"α={t['angle']:.2f} σ²={t['variance']:.3g}"
            )
        ax.set_title(label, fontsize=9)
        for col, name in enumerate(names, start=1):
            ax = axes[row, col]
            im = ax.imshow(
                sim.maps[name][row].numpy(), origin="lower", extent=extent, cmap="viridis"
            )
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
            ax.set_title(_MAP_TITLES.get(name, name), fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        title or f"{prior.name}: fields (ellipses: local anisotropy, scaled) and parameter maps",
        fontsize=10,
    )
    return _save(fig, path)


def plot_prediction(
    pred, obs, path, *, n_draws: int = 2, title: str | None = None, thresholds=()
) -> Path:
    """Posterior mean and standard deviation (and a few draws, and exceedance
    probabilities) with the observations.

    Parameters
    ----------
    pred : Prediction
        On a grid: maps; at scattered targets: coloured points.
    obs : Observations
        Drawn on every panel (points, or block outlines).
    path : str or Path
        Output image (PNG).
    n_draws : int
        Posterior draws to show beside the summaries, when ``pred`` has draws.
    thresholds : sequence of float
        A panel of ``P(field > T)`` (:meth:`Prediction.exceedance`, on 0–1) for each.

    Returns
    -------
    Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    panels = [("posterior mean", pred.mean, "RdBu_r"), ("posterior sd", pred.sd, "magma")]
    if pred.draws is not None:
        for k in range(min(n_draws, len(pred.draws))):
            panels.append((f"draw {k + 1}", pred.draws[k], "RdBu_r"))
    for t in thresholds or ():
        panels.append((f"P(field > {t:g})", pred.exceedance(t), "viridis"))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.3), squeeze=False)
    limit = float(np.abs(pred.mean).max() + 2 * pred.sd.max())
    for ax, (name, values, cmap) in zip(axes[0], panels, strict=True):
        norm = {"magma": {}, "viridis": {"vmin": 0.0, "vmax": 1.0}}.get(
            cmap, {"vmin": -limit, "vmax": limit}
        )
        if pred.grid is not None:
            (x0, x1), (y0, y1) = pred.grid.extent
            im = ax.imshow(
                values.reshape(pred.grid.shape),
                origin="lower",
                extent=(x0, x1, y0, y1),
                cmap=cmap,
                **norm,
            )
        else:
            im = ax.scatter(
                pred.targets[:, 0], pred.targets[:, 1], c=values, s=12, cmap=cmap, **norm
            )
            ax.set_aspect("equal")
        if obs.operator.blocks is None:
            ax.scatter(*obs.locations.T, s=_marker_size(len(obs)), c="none", edgecolors="k",
                       linewidths=0.8 if len(obs) <= 200 else 0.3)  # fmt: skip
        else:
            for x0, x1, y0, y1 in obs.operator.blocks:
                ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="k", lw=0.8))
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        ax.set_title(name, fontsize=9)
    fig.suptitle(title or f"{pred.method}: {len(obs)} observations (circles)", fontsize=10)
    return _save(fig, path)


def plot_demo(truth, obs, predictions: dict, path, *, grid, ellipses=None) -> Path:
    """The true field and observations beside each method's posterior mean and sd.

    Parameters
    ----------
    truth : array, shape (H, W)
    obs : Observations
    predictions : dict of str to Prediction
        On ``grid``, one column per method.
    path : str or Path
    grid : Grid
    ellipses : dict, optional
        The true field's local anisotropy drawn over it: ``points`` (k, 2) and, at each,
        ``length_scale``, ``anis_ratio`` and ``angle`` (radians from the x axis), (k,):
        an ellipse with semi-axes ``ℓ/2`` and ``r ℓ/2`` (halved so that neighbours rarely
        overlap).

    Returns
    -------
    Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (x0, x1), (y0, y1) = grid.extent
    extent = (x0, x1, y0, y1)
    limit = float(np.abs(truth).max())
    sd_max = max(float(p.sd.max()) for p in predictions.values())
    columns = 1 + len(predictions)
    fig, axes = plt.subplots(
        2, columns, figsize=(3.0 * columns, 5.6), squeeze=False, layout="constrained"
    )
    field = {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit, "origin": "lower", "extent": extent}
    spread = {"cmap": "magma", "vmin": 0.0, "vmax": sd_max, "origin": "lower", "extent": extent}
    im_field = axes[0, 0].imshow(truth, **field)
    axes[0, 0].set_title("true field", fontsize=9)
    if ellipses is not None:
        from matplotlib.patches import Ellipse

        for k, (px, py) in enumerate(np.asarray(ellipses["points"])):
            ell = float(ellipses["length_scale"][k])
            axes[0, 0].add_patch(
                Ellipse(
                    (px, py),
                    ell,
                    ell * float(ellipses["anis_ratio"][k]),
                    angle=float(np.degrees(ellipses["angle"][k])),
                    fill=False,
                    ec="k",
                    lw=0.8,
                )
            )
        axes[0, 0].set_title("true field; ellipses: ℓ/2, rℓ/2", fontsize=9)
    axes[1, 0].scatter(
        *obs.locations.T, c=obs.values, cmap="RdBu_r", vmin=-limit, vmax=limit, s=18, ec="k"
    )
    axes[1, 0].set(xlim=(x0, x1), ylim=(y0, y1), aspect="equal")
    axes[1, 0].set_title(f"{len(obs)} observations", fontsize=9)
    for k, (name, pred) in enumerate(predictions.items(), start=1):
        axes[0, k].imshow(pred.mean.reshape(grid.shape), **field)
        axes[0, k].set_title(f"{name}: mean", fontsize=9)
        im_sd = axes[1, k].imshow(pred.sd.reshape(grid.shape), **spread)
        axes[1, k].set_title(f"{name}: sd", fontsize=9)
        axes[1, k].scatter(*obs.locations.T, s=4, c="w")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im_field, ax=axes[0].tolist(), fraction=0.02, pad=0.01)
    fig.colorbar(im_sd, ax=axes[1].tolist(), fraction=0.02, pad=0.01)
    return _save(fig, path)


def plot_samples(fields, path, *, grid=None, reference=None, title: str | None = None) -> Path:
    """A row of fields (and a row of reference fields beneath, on the same colour scale).

    Parameters
    ----------
    fields : array, shape (n, H, W)
    path : str or Path
    grid : Grid, optional
        For physical axes.
    reference : array, shape (m, H, W), optional
        E.g. exactly simulated fields, to compare by eye.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("sample", np.asarray(fields))]
    if reference is not None:
        rows.append(("simulated", np.asarray(reference)))
    n = min(8, *(len(r) for _, r in rows))
    limit = float(max(np.abs(r[:n]).max() for _, r in rows))
    extent = None if grid is None else (*grid.extent[0], *grid.extent[1])
    fig, axes = plt.subplots(len(rows), n, figsize=(1.9 * n, 2.0 * len(rows)), squeeze=False)
    for (name, values), row in zip(rows, axes, strict=True):
        for k, ax in enumerate(row):
            ax.imshow(
                values[k], origin="lower", cmap="RdBu_r", vmin=-limit, vmax=limit, extent=extent
            )
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name} {k + 1}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_denoising_mse(sigma, mse, oracle_mse, path, *, title: str | None = None) -> Path:
    """Network and oracle denoising MSE against the noise-to-signal ratio σ (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    ax.loglog(sigma, mse, "o-", label="network")
    ax.loglog(sigma, oracle_mse, "k--", label="exact oracle (floor)")
    ax.set_xlabel("noise-to-signal ratio σ")
    ax.set_ylabel("MSE of x̂₀ per pixel")
    ax.legend(fontsize=8)
    ax.set_title(title or "denoising error", fontsize=10)
    return _save(fig, path)


def _save(fig, path) -> Path:
    """Lay out, write as PNG (creating the folder, atomically) and close a figure."""
    import matplotlib.pyplot as plt

    if fig.get_layout_engine() is None:
        fig.tight_layout()
    path = Path(path)
    try:
        with atomic_write(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
    return path


#: how figures name the unconditional samplers
SAMPLER_LABELS = {"dpm2m": "DPM-Solver++(2M)", "ddim": "DDIM", "ddpm": "DDPM"}


def plot_store(store, prior, path, *, n_show: int = 4) -> Path:
    """The first fields of a field store beside their parameter maps."""
    import torch

    from geodiff.fields.simulate import Simulation

    k = min(n_show, len(store))
    sim = Simulation(
        torch.from_numpy(store.fields[:k]),
        store.theta(slice(0, k)),
        store.maps(slice(0, k)),
        torch.arange(k),
        store.grid,
    )
    return plot_simulation(sim, prior, path, n_show=k)


def plot_model_samples(model, fields, path, *, sampler: str, steps: int, seed: int = 0) -> Path:
    """A model's samples above exact simulations of its prior, on one colour scale."""
    from geodiff.fields.simulate import simulate

    reference = simulate(model.prior, model.grid, min(8, len(fields)), seed=seed).fields
    title = (
        f"{SAMPLER_LABELS.get(sampler, sampler)}, {steps} steps (top); "
        "exact simulations of the prior (bottom)"
    )
    return plot_samples(fields, path, grid=model.grid, reference=reference, title=title)


def _marker_size(n_points: int) -> float:
    """Observation markers: 10 pt² up to 200 points, smaller for more (the map stays visible)."""
    return 10.0 * min(1.0, 200.0 / max(n_points, 1))
