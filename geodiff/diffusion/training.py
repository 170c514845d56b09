"""Training a denoiser as a DDPM: EMA, warm-up, clipping, validation, resumption, DDP.

A run directory holds ``run.json`` (what is trained, fixed at the start), ``state-STEP``
checkpoints (weights, EMA, optimiser; the newest complete one is resumed), ``model``
(the EMA weights as a :class:`DiffusionModel`), ``metrics.jsonl`` and preview images.
Every batch and every noise draw is a function of ``(seed, step, rank)``, so a run that
is killed and resumed continues exactly as if it had not been.
"""

from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from geodiff.diffusion.checkpoint import (
    code_revision,
    load_state,
    read_json,
    read_tensors,
    write_checkpoint,
)
from geodiff.diffusion.model import DiffusionModel
from geodiff.diffusion.network import Denoiser
from geodiff.diffusion.oracle import mixture_oracle
from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.diffusion.validation import denoising_mse, validation_steps
from geodiff.errors import CheckpointError, GeodiffError
from geodiff.grid import Grid
from geodiff.io import write_text
from geodiff.rng import derive_seed

__all__ = ["TrainingConfig", "train", "train_command"]

_NOISE_STREAM, _VALIDATION_STREAM, _INIT_STREAM = 40, 41, 42
#: settings that may change when a run is resumed (everything else must match); the
#: learning rate and EMA decay may change for a decay phase (the log records each step's lr)
_RESUMABLE = {
    "learning_rate",
    "ema_decay",
    "steps",
    "checkpoint_every",
    "validate_every",
    "log_every",
    "n_preview",
    "n_validation",
    "oracle_components",
}


@dataclass
class TrainingConfig:
    """Optimisation and bookkeeping settings of a training run.

    ``steps`` counts optimiser steps; the learning rate rises linearly over
    ``warmup_steps`` and then stays at ``learning_rate``; the EMA decay ramps up as
    ``min(ema_decay, (1 + step) / (10 + step))``.
    """

    steps: int = 20_000
    batch_size: int = 64
    learning_rate: float = 2e-4
    warmup_steps: int = 500
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    weight_decay: float = 0.0
    checkpoint_every: int = 500
    validate_every: int = 2_000
    log_every: int = 50
    seed: int = 0
    mixed_precision: bool = True
    n_validation: int = 256
    oracle_components: int = 64
    n_preview: int = 8

    def __post_init__(self):
        for key in ("steps", "batch_size", "checkpoint_every", "validate_every", "log_every"):
            if int(getattr(self, key)) < 1:
                raise GeodiffError(f"training {key} must be a positive integer")
        if not 0 <= self.ema_decay < 1 or self.learning_rate <= 0 or self.grad_clip <= 0:
            raise GeodiffError("need 0 <= ema_decay < 1, learning_rate > 0 and grad_clip > 0")


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank), initialising torch.distributed under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def _latest_state(run_dir: Path) -> tuple[dict, dict] | None:
    """The newest readable training state, skipping any that a crash left corrupt."""
    for path in sorted(run_dir.glob("state-*.json"), reverse=True):
        try:
            meta = read_json(path)
            return meta, read_tensors(meta)
        except CheckpointError:
            continue
    return None


def _save_state(run_dir: Path, step: int, denoiser, ema, optimizer, spec: dict) -> None:
    tensors = {f"model.{k}": v for k, v in denoiser.state_dict().items()}
    tensors |= {f"ema.{k}": v for k, v in ema.state_dict().items()}
    opt = optimizer.state_dict()
    for index, state in opt["state"].items():
        for key, value in state.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value)
    meta = {"step": step, "spec": spec, "param_groups": opt["param_groups"]}
    write_checkpoint(run_dir, f"state-{step:09d}", tensors, meta)
    for old in run_dir.glob("state-*.json"):
        if old.stem != f"state-{step:09d}":
            old.with_suffix(".safetensors").unlink(missing_ok=True)
            old.unlink(missing_ok=True)


def _load_state(meta, tensors, denoiser, ema, optimizer) -> int:
    where = meta["_path"]
    part = {
        p: {k[len(p) + 1 :]: v for k, v in tensors.items() if k.startswith(p + ".")}
        for p in ("model", "ema", "optim")
    }
    load_state(denoiser, part["model"], where)
    load_state(ema, part["ema"], where)
    state: dict = {}
    for key, value in part["optim"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    try:
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"{where}: optimiser state does not fit ({err})") from err
    return int(meta["step"])


def _check_same_run(spec: dict, stored: dict, run_dir: Path) -> None:
    a = {k: v for k, v in spec.items() if k not in ("config", "data_scale")}
    b = {k: v for k, v in stored.items() if k not in ("config", "data_scale")}
    ca = {k: v for k, v in spec["config"].items() if k not in _RESUMABLE}
    cb = {k: v for k, v in stored.get("config", {}).items() if k not in _RESUMABLE}
    if a != b or ca != cb:
        diff = sorted(
            {k for k in a | b if a.get(k) != b.get(k)} | {k for k in ca if ca[k] != cb.get(k)}
        )
        raise GeodiffError(
            f"{run_dir} holds another training run (differs in {diff}); resume it with the "
            "same settings or choose a new output directory"
        )


def _log(run_dir: Path, record: dict) -> None:
    with open(run_dir / "metrics.jsonl", "a") as handle:
        handle.write(json.dumps(record) + "\n")


def _truncate_log(run_dir: Path, step: int) -> None:
    """Drop records written after the state being resumed (they will be written again),
    and a last line that a crash cut short."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            continue
    write_text(path, "".join(line + "\n" for line in keep))


@torch.no_grad()
def _update_ema(ema, model, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p.detach(), 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers(), strict=True):
        e.copy_(b)


class _Validator:
    """Fixed validation fields (exact draws of an oracle mixture) and the oracle's MSE."""

    def __init__(self, prior, grid, schedule, scale, config: TrainingConfig, device):
        self.schedule, self.device, self.seed = schedule, device, config.seed
        self.steps = validation_steps(schedule)
        self.sigma = schedule.sigma(self.steps)
        self.oracle = None
        # a prior that is not Gaussian given θ has no exact oracle: held-out fields only
        if config.oracle_components > 0 and getattr(prior, "is_gaussian", True):
            self.oracle = mixture_oracle(
                prior,
                grid,
                schedule,
                n_components=config.oracle_components,
                seed=derive_seed(config.seed, _VALIDATION_STREAM),
                scale=scale,
            )
            self.fields = self.oracle.sample(config.n_validation, seed=config.seed).float()
            self.oracle_mse = denoising_mse(
                self.oracle, self.fields, schedule, self.steps, seed=config.seed
            )
        else:
            from geodiff.fields.simulate import simulate

            sim = simulate(
                prior, grid, config.n_validation, derive_seed(config.seed, _VALIDATION_STREAM)
            )
            self.fields = sim.fields[:, None] / scale
            self.oracle_mse = None

    def __call__(self, denoiser: Denoiser) -> dict:
        denoiser.eval()
        mse = denoising_mse(
            denoiser,
            self.fields,
            self.schedule,
            self.steps,
            seed=self.seed,
            device=self.device,
        )
        record = {"steps": self.steps.tolist(), "sigma": self.sigma.tolist(), "mse": mse.tolist()}
        if self.oracle_mse is not None:
            record["oracle_mse"] = self.oracle_mse.tolist()
            record["ratio"] = (mse / self.oracle_mse).tolist()
        return record


def train(
    run_dir,
    *,
    prior,
    grid: Grid,
    data,
    network: dict,
    schedule: NoiseSchedule | None = None,
    prediction: str = "v",
    config: TrainingConfig | None = None,
    device=None,
    progress: bool = True,
    callback=None,
) -> DiffusionModel:
    """Train (or resume training) a denoiser of fields from ``prior`` on ``grid``.

    Parameters
    ----------
    run_dir : str or Path
        Created if needed; an existing run with the same settings is resumed.
    prior : GRFPrior
        The prior of the training fields (for the oracle and the checkpoint).
    grid : Grid
    data : FreshFields or StoredFields
        ``data(step, rank, world)`` gives a batch (B, 1, H, W) in physical units.
    network : dict
        Backbone config (:func:`geodiff.diffusion.network_config`).
    schedule : NoiseSchedule, optional
    prediction : {"eps", "v", "x0"}
    config : TrainingConfig, optional
    device : str or torch.device, optional
        The GPU when torch sees one (under torchrun, this process's GPU).
    progress : bool
    callback : callable, optional
        ``callback(step, loss)`` after every optimiser step (e.g. to stop early).

    Returns
    -------
    DiffusionModel
        The EMA model, also written to ``run_dir/model.{json,safetensors}``.
    """
    from tqdm.auto import tqdm

    config = config or TrainingConfig()
    schedule = schedule or NoiseSchedule()
    run = _start_run(
        Path(run_dir), prior, grid, data, network, schedule, prediction, config, device
    )
    bar = tqdm(
        total=config.steps,
        initial=run.step,
        disable=not progress or run.rank != 0,
        desc="training",
        unit="step",
    )
    window = _Window()
    try:
        while run.step < config.steps:
            started = time.perf_counter()
            loss, lr, grad_norm, batch = _optimisation_step(run, data)
            run.step += 1
            window.loss, window.steps = window.loss + loss.item(), window.steps + 1
            window.time += time.perf_counter() - started
            bar.update(1)
            if callback is not None:
                callback(run.step, loss.item())
            if run.step % config.log_every == 0 or run.step == config.steps:
                _log_window(run, window, lr, grad_norm, batch, bar)
                window = _Window()
            if run.step % config.validate_every == 0 or run.step == config.steps:
                _validate(run, run.step)
            if run.step % config.checkpoint_every == 0 or run.step == config.steps:
                _checkpoint(run, run.step)
    except KeyboardInterrupt:
        if run.step:
            _checkpoint(run, run.step)
        raise
    finally:
        bar.close()
    return run.model


@dataclass
class _Run:
    """What one process of a training run holds (made by :func:`_start_run`).

    Attributes
    ----------
    run_dir : Path
    config : TrainingConfig
    schedule : NoiseSchedule
    grid : Grid
    rank, world : int
        This process's rank and the number of processes.
    device : torch.device
    amp : bool
        Whether the forward pass runs in bfloat16 autocast.
    denoiser, ema : Denoiser
        The trained network and its exponential moving average.
    optimizer : torch.optim.AdamW
    wrapped : torch.nn.Module
        The network the loss runs through (DDP-wrapped when ``world > 1``).
    spec : dict
        What is trained (``run.json``).
    scale : float
        Physical units per network unit.
    model : DiffusionModel
        The EMA model that is saved.
    validator : _Validator or None
        On rank 0 only.
    step : int
        Optimiser steps taken.
    """

    run_dir: Path
    config: TrainingConfig
    schedule: NoiseSchedule
    grid: Grid
    rank: int
    world: int
    device: torch.device
    amp: bool
    denoiser: Denoiser
    ema: Denoiser
    optimizer: torch.optim.Optimizer
    wrapped: torch.nn.Module
    spec: dict
    scale: float
    model: DiffusionModel
    validator: _Validator | None
    step: int


@dataclass
class _Window:
    """Loss and time summed over the optimiser steps since the last log record."""

    loss: float = 0.0
    time: float = 0.0
    steps: int = 0


def _training_device(device, local_rank: int) -> torch.device:
    """The device to train on: ``device``, else this process's GPU, else the CPU.

    Parameters
    ----------
    device : str or torch.device or None
    local_rank : int

    Returns
    -------
    torch.device
    """
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def _start_run(
    run_dir: Path, prior, grid: Grid, data, network: dict, schedule, prediction, config, device
) -> _Run:
    """Build the networks and the optimiser, resume any saved state and write ``run.json``.

    Parameters
    ----------
    run_dir, prior, grid, data, network, schedule, prediction, config, device :
        As for :func:`train` (``schedule`` and ``config`` given).

    Returns
    -------
    _Run
    """
    rank, world, local_rank = _distributed()
    device = _training_device(device, local_rank)
    amp = config.mixed_precision and device.type == "cuda"

    with torch.random.fork_rng(devices=[]):  # the initial weights depend on the seed only
        torch.manual_seed(derive_seed(config.seed, _INIT_STREAM))
        denoiser = Denoiser(network, schedule, prediction).to(device)
    ema = copy.deepcopy(denoiser).requires_grad_(False)
    optimizer = torch.optim.AdamW(
        denoiser.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    spec = {
        "network": denoiser.config,
        "schedule": schedule.to_dict(),
        "prediction": prediction,
        "grid": grid.to_dict(),
        "prior": prior.to_config(),
        "data": data.describe(),
        "world_size": world,
        "config": asdict(config),
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    step, scale = _resume(run_dir, spec, data, denoiser, ema, optimizer, rank)
    spec["data_scale"] = scale
    if rank == 0:
        write_text(run_dir / "run.json", json.dumps(spec, indent=1))
    info = {"data": data.describe(), "code_revision": code_revision()}  # the code that trains
    model = DiffusionModel(ema, grid, prior.to_config(), scale, info)
    validator = _Validator(prior, grid, schedule, scale, config, device) if rank == 0 else None
    wrapped = denoiser.backbone  # the network the loss runs through
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(
            denoiser.backbone, device_ids=[device.index] if device.type == "cuda" else None
        )
    return _Run(
        run_dir, config, schedule, grid, rank, world, device, amp,
        denoiser, ema, optimizer, wrapped, spec, scale, model, validator, step,
    )  # fmt: skip


def _resume(run_dir: Path, spec: dict, data, denoiser, ema, optimizer, rank: int):
    """Load the newest saved state of this run into the networks and the optimiser.

    Parameters
    ----------
    run_dir : Path
    spec : dict
        What is trained now (checked against what the run folder holds).
    data : FreshFields or StoredFields
    denoiser, ema : Denoiser
    optimizer : torch.optim.Optimizer
    rank : int

    Returns
    -------
    tuple of (int, float)
        The step resumed (0 for a new run) and the data scale: the stored one, or
        ``data.scale()`` for a new run.
    """
    step, found = 0, _latest_state(run_dir)
    if found is not None:
        _check_same_run(spec, found[0]["spec"], run_dir)
        step = _load_state(found[0], found[1], denoiser, ema, optimizer)
        scale = float(found[0]["spec"]["data_scale"])
        if rank == 0:
            _truncate_log(run_dir, step)
    elif (run_dir / "run.json").exists():  # stopped before its first checkpoint
        stored = json.loads((run_dir / "run.json").read_text())
        _check_same_run(spec, stored, run_dir)
        scale = float(stored["data_scale"])
    else:
        scale = data.scale()
    return step, scale


def _optimisation_step(run: _Run, data):
    """One optimiser step at ``run.step`` (not advanced here), and the EMA update.

    Parameters
    ----------
    run : _Run
    data : FreshFields or StoredFields

    Returns
    -------
    tuple
        ``(loss, lr, grad_norm, batch)``: the loss tensor, the learning rate, the
        gradient norm before clipping and the batch size.

    Raises
    ------
    GeodiffError
        If the loss is not finite.
    """
    config, schedule, device, step = run.config, run.schedule, run.device, run.step
    denoiser, optimizer = run.denoiser, run.optimizer
    denoiser.train()
    x0 = data(step, run.rank, run.world).to(device) / run.scale
    gen = torch.Generator().manual_seed(derive_seed(config.seed, _NOISE_STREAM, step, run.rank))
    t = torch.randint(0, schedule.steps, (len(x0),), generator=gen).to(device)
    noise = torch.randn(x0.shape, generator=gen).to(device)
    x_t = schedule.add_noise(x0, noise, t)
    lr = config.learning_rate * min(1.0, (step + 1) / max(config.warmup_steps, 1))
    for group in optimizer.param_groups:
        group["lr"] = lr
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=run.amp):
        out = denoiser.network_output(x_t, t, run.wrapped)
    loss = (out.float() - denoiser.target(x0, noise, t)).square().mean()
    if not torch.isfinite(loss):
        raise GeodiffError(f"training diverged at step {step} (loss {float(loss)})")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(denoiser.parameters(), config.grad_clip)
    optimizer.step()
    _update_ema(run.ema, denoiser, min(config.ema_decay, (1 + step) / (10 + step)))
    return loss, lr, grad_norm, len(x0)


def _log_window(run: _Run, window: _Window, lr: float, grad_norm, batch: int, bar) -> None:
    """Write the log record of the steps in ``window`` (on rank 0) and show its loss.

    Parameters
    ----------
    run : _Run
    window : _Window
    lr : float
    grad_norm : torch.Tensor
    batch : int
        Fields per batch in this process.
    bar : tqdm
    """
    record = {
        "step": run.step,
        "loss": window.loss / window.steps,
        "lr": lr,
        "grad_norm": float(grad_norm),
        "fields_per_s": window.steps * batch * run.world / window.time,
        "time": round(time.time(), 1),  # wall clock, for run durations
    }
    bar.set_postfix(loss=f"{record['loss']:.4f}")
    if run.rank == 0:
        _log(run.run_dir, record)


def _checkpoint(run: _Run, at: int) -> None:
    """Save the training state and the EMA model at step ``at`` (on rank 0).

    Parameters
    ----------
    run : _Run
    at : int
    """
    if run.rank == 0:
        _save_state(run.run_dir, at, run.denoiser, run.ema, run.optimizer, run.spec)
        run.model.info.update(step=at, training_config=asdict(run.config))
        run.model.save(run.run_dir)
    _barrier(run.world)


def _validate(run: _Run, at: int) -> None:
    """Log the EMA network's validation record and write preview samples (on rank 0).

    Parameters
    ----------
    run : _Run
    at : int
    """
    if run.rank == 0:
        record = {"step": at, "kind": "validation", **run.validator(run.ema)}
        _log(run.run_dir, record)
        run.model.info["validation"] = record
        if run.config.n_preview:
            from geodiff.plot import plot_samples

            fields = run.model.sample(run.config.n_preview, steps=50, seed=run.config.seed)
            plot_samples(
                fields,
                run.run_dir / f"preview-{at:09d}.png",
                grid=run.grid,
                title=f"samples (DPM-Solver++, 50 steps) at step {at}",
            )
    _barrier(run.world)


def train_command(
    out,
    config: TrainingConfig,
    *,
    prior=None,
    data=None,
    grid: str | None = None,
    network: str | None = None,
    prediction: str = "v",
    schedule: str = "cosine",
    timesteps: int = 1000,
    fields_per_theta: int = 1,
    device: str | None = None,
    progress: bool = True,
    callback=None,
) -> DiffusionModel:
    """:func:`train` from the settings of ``geodiff train`` (names and paths, not objects).

    Parameters
    ----------
    out : str or Path
        Run folder (resumed if it holds a run with the same settings).
    config : TrainingConfig
    prior : str, optional
        Prior config (a .toml file or a shipped name): fresh simulations on ``grid``.
    data : str or Path, optional
        A field store to train on instead (its own prior and grid).
    grid : str, optional
        ``N`` or ``HxW`` with ``prior`` (default 32); not with ``data``.
    network : str, optional
        Backbone (a key of :data:`~geodiff.diffusion.network.NETWORKS`); default ``conv``
        for a translation-invariant prior (a model for any grid size), else by grid size.
    prediction, schedule, timesteps :
        The network's target and the noise schedule.
    fields_per_theta : int
        With ``prior``: fields drawn per parameter draw.
    device : str, optional
    progress : bool
    callback : callable, optional
        ``callback(step, loss)`` after every optimiser step (see :func:`train`).

    Returns
    -------
    DiffusionModel
    """
    from geodiff.diffusion.data import FreshFields, StoredFields
    from geodiff.diffusion.network import network_config
    from geodiff.fields.config import load_prior
    from geodiff.fields.store import open_store
    from geodiff.machine import resolve_device

    if (prior is None) == (data is None):
        raise GeodiffError("train on either a prior or a store of fields, not both or neither")
    device = resolve_device(device)
    if data is not None:
        if grid is not None:
            raise GeodiffError("--grid goes with --prior; a store's fields have their own grid")
        store = open_store(data)
        prior, grid = store.prior, store.grid
        source = StoredFields(store, config.batch_size, config.seed)
    else:
        prior = load_prior(prior)
        grid = prior.window(Grid.parse(grid or "32").shape)
        source = FreshFields(
            prior, grid, config.batch_size, config.seed,
            fields_per_theta=fields_per_theta, device=device,
        )  # fmt: skip
    if grid.shape[0] != grid.shape[1]:
        raise GeodiffError(f"the denoiser needs a square grid, got {grid.shape}")
    name = network or _default_network(prior, grid)
    return train(
        out, prior=prior, grid=grid, data=source, network=network_config(name, grid.shape[0]),
        schedule=NoiseSchedule(schedule, timesteps), prediction=prediction, config=config,
        device=device, progress=progress, callback=callback,
    )  # fmt: skip


def _default_network(prior, grid: Grid) -> str:
    """``conv`` for a translation-invariant prior, else ``small`` up to 32², ``base`` above."""
    if prior.translation_invariant:
        return "conv"
    return "small" if grid.shape[0] <= 32 else "base"
