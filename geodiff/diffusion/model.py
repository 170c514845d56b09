"""A trained diffusion prior: denoiser, grid, prior and normalisation, saved and loaded."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from geodiff.diffusion.checkpoint import (
    CheckpointWarning,
    code_revision,
    finite_number,
    load_state,
    read_json,
    read_tensors,
    warn_unverified,
    write_checkpoint,
)
from geodiff.diffusion.denoiser import PREDICTIONS
from geodiff.diffusion.network import Denoiser, is_fully_convolutional, size_multiple
from geodiff.diffusion.oracle import mixture_oracle
from geodiff.diffusion.samplers import initial_noise
from geodiff.diffusion.samplers import sample as run_sampler
from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.errors import CheckpointError, GeodiffError
from geodiff.grid import Grid
from geodiff.logs import progress_bar
from geodiff.prediction import check_finite
from geodiff.rng import generators_for

__all__ = ["DiffusionModel", "UnfinishedRunWarning", "load_model"]


class UnfinishedRunWarning(CheckpointWarning):
    """A model saved by a training run that stopped before its last step."""


_SAMPLE_STREAM = 20


class DiffusionModel:
    """A learned prior over fields on ``grid``.

    The network works on standardised fields ``x / data_scale``; :meth:`sample` returns
    physical units.

    Parameters
    ----------
    denoiser : Denoiser
    grid : Grid
    prior_config : dict
        The prior the training fields came from (``prior.to_config()``).
    data_scale : float
        Standard deviation the fields are divided by.
    info : dict, optional
        Training step, code revision, metrics.
    """

    def __init__(
        self,
        denoiser: Denoiser,
        grid: Grid,
        prior_config: dict,
        data_scale: float,
        info: dict | None = None,
    ):
        trained = (denoiser.config["sample_size"],) * 2
        if tuple(grid.shape) != trained and not is_fully_convolutional(denoiser.config):
            raise GeodiffError(f"grid {grid.shape} does not match the network's size")
        self.denoiser, self.grid, self.prior_config = denoiser, grid, prior_config
        self.data_scale, self.info = float(data_scale), dict(info or {})
        self._prior_covariances: dict = {}
        self._lag_covariances: dict = {}

    @property
    def schedule(self) -> NoiseSchedule:
        return self.denoiser.schedule

    @property
    def resolution(self) -> float:
        """The grid's cell size in the prior's units (its node spacing; square cells)."""
        dy, dx = self.grid.spacing
        return float(dx) if np.isclose(dx, dy, rtol=1e-6) else float(min(dx, dy))

    def posterior_defaults(self, method: str) -> dict:
        """The sampler options this model was measured to need for ``method``.

        Stored in the checkpoint's ``info["posterior_defaults"]`` as ``{method: {option:
        value}}`` (for example ``{"mmps": {"cg_iterations": 0}}`` where the network's
        Jacobian measured worse than the prior's Gaussian); options given by the caller
        override them. Empty for a model that stores none.
        """
        return dict(self.info.get("posterior_defaults", {}).get(method, {}))

    @property
    def any_size(self) -> bool:
        """Whether the model is a prior for grids of any size at its :attr:`resolution`:
        a fully convolutional network trained on windows of a translation-invariant prior."""
        return is_fully_convolutional(self.denoiser.config) and self.prior.translation_invariant

    @property
    def window_shape(self) -> tuple[int, int]:
        """The grid the network was trained on, ``(H, W)``."""
        return (int(self.denoiser.config["sample_size"]),) * 2

    def grid_shapes_text(self) -> str:
        """Which grid shapes :meth:`on_grid` takes, in words."""
        if not self.any_size:
            return f"only its own {self.grid.shape[0]}x{self.grid.shape[1]} grid"
        m, (h, w) = size_multiple(self.denoiser.config), self.window_shape
        return f"any grid of at least {h}x{w} nodes whose sides are multiples of {m}"

    def on_grid(self, shape) -> DiffusionModel:
        """This prior on a window of ``shape = (H, W)`` nodes at the model's resolution.

        The window starts at the prior's domain's lower-left corner
        (:meth:`~geodiff.fields.prior.GRFPrior.window`); a larger shape is a larger area,
        not finer cells. The network is shared, not copied.

        Raises
        ------
        GeodiffError
            A model tied to its grid (:attr:`any_size` false), a shape smaller than the
            training window or with a side that is not a multiple of the network's.
        """
        shape = tuple(int(s) for s in shape)
        if shape == tuple(self.grid.shape):
            return self
        if len(shape) != 2 or not self.any_size:
            raise GeodiffError(
                f"this model takes {self.grid_shapes_text()}, not {shape}: its network has "
                "attention or its prior is not translation invariant"
                if len(shape) == 2 else f"a grid shape is (H, W), got {shape}"
            )  # fmt: skip
        m, (h0, w0) = size_multiple(self.denoiser.config), self.window_shape
        if shape[0] < h0 or shape[1] < w0 or shape[0] % m or shape[1] % m:
            near = tuple(max(s0, -(-s // m) * m) for s, s0 in zip(shape, (h0, w0), strict=True))
            raise GeodiffError(
                f"this model takes {self.grid_shapes_text()}, not {shape[0]}x{shape[1]}; "
                f"the nearest is {near[0]}x{near[1]}"
            )
        grid = self.prior.window(shape)
        if not np.isclose(grid.spacing, self.grid.spacing, rtol=1e-6).all():
            raise GeodiffError("the prior's window spacing differs from the model's grid")
        model = DiffusionModel(self.denoiser, grid, self.prior_config, self.data_scale, self.info)
        model._lag_covariances = self._lag_covariances  # shared: the same prior
        return model

    @property
    def prior(self):
        from geodiff.fields.config import prior_from_config

        return prior_from_config(self.prior_config, source="checkpoint prior")

    def to(self, device) -> DiffusionModel:
        self.denoiser.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    def meta(self) -> dict:
        """The JSON description (without checksum) of this model."""
        return {
            "network": self.denoiser.config,
            "schedule": self.schedule.to_dict(),
            "prediction": self.denoiser.prediction,
            "grid": self.grid.to_dict(),
            "prior": self.prior_config,
            "data_scale": self.data_scale,
            "code_revision": self.info.get("code_revision", code_revision()),
            "info": {k: v for k, v in self.info.items() if k != "code_revision"},
        }

    def save(self, directory, name: str = "model"):
        """Write ``directory/name.safetensors`` and ``directory/name.json``."""
        return write_checkpoint(directory, name, self.denoiser.state_dict(), self.meta())

    def oracle(self, n_components: int = 64, seed: int = 0):
        """The exact denoiser of the training prior in the network's units."""
        return mixture_oracle(
            self.prior,
            self.grid,
            self.schedule,
            n_components=n_components,
            seed=seed,
            scale=self.data_scale,
        )

    def prior_covariance(self, n_components: int = 64, seed: int = 0) -> torch.Tensor:
        """The training prior's covariance on the grid, ``E_θ[Σ_θ]``, in the network's units.

        :meth:`GRFPrior.marginal_covariance` on the grid divided by ``data_scale²``, float64,
        shape (d, d) with ``d = H*W`` in row-major grid order; kept for later calls.
        """
        key = (n_components, seed)
        if key not in self._prior_covariances:
            cov = self.prior.marginal_covariance(self.grid.points(), n_components, seed)
            self._prior_covariances[key] = cov / self.data_scale**2
        return self._prior_covariances[key]

    def lag_covariance(self, radius: int = 32, n_theta: int = 64, seed: int = 0) -> np.ndarray:
        """:meth:`~geodiff.fields.prior.GRFPrior.lag_covariance` in the network's units
        (lags in cells of the model's grid), kept for later calls."""
        key = (radius, n_theta, seed)
        if key not in self._lag_covariances:
            lags = self.prior.lag_covariance(self.resolution, radius, n_theta, seed)
            self._lag_covariances[key] = lags / self.data_scale**2
        return self._lag_covariances[key]

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        steps: int = 50,
        sampler: str = "dpm2m",
        eta: float = 0.0,
        seed: int = 0,
        start: int = 0,
        batch_size: int = 256,
        progress: bool = False,
    ) -> torch.Tensor:
        """Unconditional samples, physical units, float32, shape (n, H, W) on the CPU.

        ``sampler`` is ``"dpm2m"`` (DPM-Solver++(2M), the default: the most accurate for a
        given number of steps, see BENCHMARKS.md), ``"ddim"`` (with ``eta``) or ``"ddpm"``
        (all T steps). Sample ``i`` depends only on ``(seed, start + i)``, not on
        ``batch_size``.
        """
        if n < 1:
            raise GeodiffError(f"number of samples must be positive, got {n}")
        from geodiff.machine import check_memory

        h, w = self.grid.shape
        check_memory(
            2 * 4.0 * n * h * w,  # the batches, then their concatenation (float32)
            f"sampling {n} fields of {h}x{w}",
            "draw fewer fields per run (several runs with --seed)",
        )
        self.denoiser.eval()
        out = []
        bar = progress_bar(n, enabled=progress, desc="sampling", unit="field")
        for lo in range(0, n, batch_size):
            idx = range(start + lo, start + min(n, lo + batch_size))
            gens = generators_for(seed, _SAMPLE_STREAM, idx)
            x_T = initial_noise((1, *self.grid.shape), gens, self.device)
            x0 = run_sampler(
                self.denoiser,
                self.schedule,
                x_T,
                sampler=sampler,
                steps=steps,
                eta=eta,
                generators=gens,
            )
            out.append(x0[:, 0].float().cpu() * self.data_scale)
            bar.update(len(idx))
        bar.close()
        fields = torch.cat(out)
        check_finite(
            fields.numpy(), "sampled fields", hint="the model's weights or settings are broken"
        )
        return fields


def load_model(path, device=None, precision: str = "float32") -> DiffusionModel:
    """Load a model written by :meth:`DiffusionModel.save` (a run directory or its JSON).

    ``precision`` is the network's arithmetic at inference (``"float32"`` or
    ``"bfloat16"``, :meth:`~geodiff.diffusion.network.Denoiser.set_precision`).

    ``path`` may also be a bare model name, found by :func:`geodiff.models.resolve_model`
    (``$GEODIFF_MODEL_PATH``, then the shipped models such as ``"stationary-matern-32"``).

    Raises
    ------
    CheckpointError
        Missing, corrupt or incompatible checkpoint, or an unknown model name.
    """
    from geodiff.models import resolve_model

    meta = read_json(resolve_model(path))
    where = meta["_path"]
    _check_meta(meta, where)
    try:
        grid = Grid.from_dict(meta["grid"])
        _check_network_memory(meta["network"], grid, meta["schedule"].get("steps", 0))
        schedule = NoiseSchedule.from_dict(meta["schedule"])
        denoiser = Denoiser(meta["network"], schedule, meta["prediction"])
        data_scale = float(meta["data_scale"])
        prior_config = meta["prior"]
    except GeodiffError as err:
        raise CheckpointError(f"{where}: invalid checkpoint ({err})") from err
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{where}: incomplete or invalid checkpoint ({err})") from err
    load_state(denoiser, read_tensors(meta), where)
    denoiser.eval()  # inference: no training-mode layers whatever the network holds
    denoiser.set_precision(precision)
    info = dict(meta.get("info", {}), code_revision=meta.get("code_revision", "unknown"))
    try:
        model = DiffusionModel(denoiser, grid, prior_config, data_scale, info)
        model.prior  # noqa: B018 - validates the prior config
    except GeodiffError as err:
        raise CheckpointError(f"{where}: invalid checkpoint ({err})") from err
    _check_posterior_defaults(info.get("posterior_defaults", {}), where)
    warn_unverified(meta)
    _warn_unfinished(info, where)
    return model.to(device or "cpu")


def _check_posterior_defaults(defaults, where: str) -> None:
    """Refuse stored sampler defaults that are not ``{sampler: {option: value}}`` (whether
    the sampler takes those options is checked where it runs, in the posterior layer)."""
    if not isinstance(defaults, dict) or not all(
        isinstance(options, dict) and all(isinstance(k, str) for k in options)
        for options in defaults.values()
    ):
        raise CheckpointError(f"{where}: invalid checkpoint: posterior_defaults must map a "
                              f"sampler to its options, got {defaults!r}")  # fmt: skip


def _check_meta(meta: dict, where: str) -> None:
    """Refuse values in a checkpoint's JSON that no training run writes."""

    def bad(what: str):
        return CheckpointError(f"{where}: invalid checkpoint: {what}")

    scale = meta.get("data_scale")
    if not finite_number(scale) or scale <= 0:
        raise bad(f"data_scale must be a finite number > 0, got {scale!r}")
    if meta.get("prediction") not in PREDICTIONS:
        raise bad(f"prediction must be one of {PREDICTIONS}, got {meta.get('prediction')!r}")
    schedule = meta.get("schedule")
    if not isinstance(schedule, dict):
        raise bad("schedule must be a JSON object")
    for key, value in schedule.items():
        if key != "kind" and not finite_number(value):
            raise bad(f"schedule {key} must be a finite number, got {value!r}")
    network = meta.get("network")
    if not isinstance(network, dict):
        raise bad("network must be a JSON object")
    channels = network.get("block_out_channels")
    if (
        not isinstance(channels, list)
        or not channels
        or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in channels)
    ):
        raise bad(f"network block_out_channels must be positive integers, got {channels!r}")
    for key in ("layers_per_block", "norm_num_groups", "sample_size", "in_channels"):
        value = network.get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise bad(f"network {key} must be a positive integer, got {value!r}")
    if not isinstance(meta.get("prior"), dict):
        raise bad("prior must be a JSON object")


def _check_network_memory(network: dict, grid: Grid, steps: int) -> None:
    """Refuse a network, grid or schedule too large for this machine before building it."""
    from geodiff.machine import check_memory

    channels = network["block_out_channels"]
    layers = network.get("layers_per_block", 1)
    # about 60 (layers + 1) c² weights per level (1.1 M for "small"), float32, x3 headroom
    n_weights = 60 * (layers + 1) * sum(c * c for c in channels)
    activations = 4 * 16 * max(channels) * grid.n_nodes  # one field's features, float32
    check_memory(
        3 * 4 * n_weights + activations + 6 * 8 * steps,
        f"the network in this checkpoint ({n_weights:.3g} weights, {grid.shape[0]}x"
        f"{grid.shape[1]} grid, {steps} steps)",
    )


def _warn_unfinished(info: dict, where: str) -> None:
    """Warn when the model was saved at a step before its run's last by a run that left
    its training state beside it (a killed ``geodiff train``, resumable); a model copied
    out of its run folder (like the shipped ones) is taken as final."""
    from pathlib import Path

    step = info.get("step")
    target = (info.get("training_config") or {}).get("steps")
    resumable = any(Path(where).parent.glob("state-*.json"))
    if isinstance(step, int) and isinstance(target, int) and step < target and resumable:
        warnings.warn(
            f"{where} is from an unfinished training run (step {step} of {target}); rerun "
            "`geodiff train` with the same --out to finish it",
            UnfinishedRunWarning,
            stacklevel=3,
        )
