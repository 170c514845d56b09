"""Training, resumption and checkpoints of the diffusion prior (tiny network, 16²)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from scipy.stats import ttest_ind

from geodiff import Grid, load_prior
from geodiff.cli import main
from geodiff.diffusion.checkpoint import meta_checksum
from geodiff.diffusion.data import FreshFields
from geodiff.diffusion.model import UnfinishedRunWarning, load_model
from geodiff.diffusion.network import Denoiser, network_config
from geodiff.diffusion.schedule import NoiseSchedule
from geodiff.diffusion.training import TrainingConfig, train, train_command
from geodiff.diffusion.validation import denoising_mse
from geodiff.errors import CheckpointError, GeodiffError

PRIOR = load_prior("stationary-matern")
GRID = Grid.square(16)


def _config(**kw):
    base = dict(
        steps=6,
        batch_size=8,
        warmup_steps=2,
        checkpoint_every=3,
        validate_every=100,
        log_every=1,
        oracle_components=4,
        n_validation=16,
        n_preview=0,
    )
    return TrainingConfig(**{**base, **kw})


def _train(run_dir, config, **kw):
    return train(
        run_dir,
        prior=PRIOR,
        grid=GRID,
        data=FreshFields(PRIOR, GRID, 8, 0),
        network=network_config("tiny", 16),
        config=config,
        progress=False,
        **kw,
    )


def _state(run_dir, step=None):
    paths = sorted(run_dir.glob("state-*.safetensors"))
    if step is None:
        (path,) = paths
    else:
        path = run_dir / f"state-{step:09d}.safetensors"
    return load_file(str(path))


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
def test_the_network_is_a_denoiser_with_gradients(prediction):
    """``Denoiser(x_t, t) -> x̂_0`` in ``x_t``'s dtype, from the raw output; differentiable."""
    from geodiff.diffusion.denoiser import DenoiserProtocol, x0_from_output
    from geodiff.diffusion.samplers import denoise_with_grad

    schedule = NoiseSchedule()
    torch.manual_seed(0)
    net = Denoiser(network_config("tiny", 16), schedule, prediction).eval()
    assert isinstance(net, DenoiserProtocol) and net.config == network_config("tiny", 16)
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    t = torch.tensor([10, 900])
    x0 = net(x, t)
    assert x0.dtype == torch.float64 and x0.shape == x.shape
    ab = schedule.alpha_bar[t].view(-1, 1, 1, 1).float()
    raw = net.network_output(x.float(), t)
    expected = x0_from_output(prediction, raw, x.float(), ab)
    torch.testing.assert_close(x0, expected.double(), rtol=0, atol=0)
    one = net(x[:1], torch.tensor([10]))  # a scalar t is every row's (float32 batching noise)
    torch.testing.assert_close(net(x, 10)[:1], one, rtol=1e-4, atol=1e-5)
    x0, leaf = denoise_with_grad(net, x, 500)
    (grad,) = torch.autograd.grad(x0.sum(), leaf)
    assert grad.dtype == torch.float64 and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_training_lowers_the_denoising_error(tmp_path):
    schedule = NoiseSchedule()
    torch.manual_seed(0)
    untrained = Denoiser(network_config("tiny", 16), schedule)
    model = _train(
        tmp_path / "run",
        _config(
            steps=120, learning_rate=2e-3, warmup_steps=10, checkpoint_every=120, ema_decay=0.9
        ),
    )
    fields = PRIOR.simulate(GRID, 64, seed=99).fields[:, None] / model.data_scale
    steps = torch.tensor([100, 400, 700])
    floor = denoising_mse(model.oracle(32), fields, schedule, steps, seed=1)  # near-Bayes
    before = denoising_mse(untrained, fields, schedule, steps, seed=1) - floor
    after = denoising_mse(model.denoiser, fields, schedule, steps, seed=1) - floor
    assert (after < 0.5 * before).all(), (before, after)  # the excess error halves at least
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    losses = [r["loss"] for r in records if "loss" in r]
    # per-step losses are noisy (batch of 8, random t): test the drop, not a fixed ratio
    assert ttest_ind(losses[:20], losses[-20:], alternative="greater").pvalue < 1e-3


def test_an_interrupted_run_resumes_to_the_same_state(tmp_path):
    _train(tmp_path / "straight", _config())

    def crash(step, loss):
        if step == 5:  # after the checkpoint at step 3: steps 4-5 are lost, as with kill -9
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        _train(tmp_path / "resumed", _config(), callback=crash)
    assert sorted(p.name for p in (tmp_path / "resumed").glob("state-*.json")) == [
        "state-000000003.json"
    ]
    _train(tmp_path / "resumed", _config())
    a, b = _state(tmp_path / "straight"), _state(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    records = [json.loads(x) for x in (tmp_path / "resumed" / "metrics.jsonl").open()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4, 5, 6]  # none twice


def test_a_callback_that_stops_the_run_keeps_its_work(tmp_path):
    """What ``benchmarks/bench_window.py`` does at the end of a CPU budget: a
    KeyboardInterrupt from the callback of ``train_command`` checkpoints that step."""

    def budget(step, loss):
        if step == 4:  # between the checkpoints at 3 and 6
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_command(tmp_path, _config(), prior="stationary-matern", grid="16", network="tiny",
                      progress=False, callback=budget)  # fmt: skip
    assert [p.name for p in tmp_path.glob("state-*.json")] == ["state-000000004.json"]
    with pytest.warns(UnfinishedRunWarning, match="step 4 of 6"):
        assert load_model(tmp_path, "cpu").info["step"] == 4


def test_resuming_with_other_settings_is_refused(tmp_path):
    _train(tmp_path / "run", _config(steps=3))
    with pytest.raises(GeodiffError, match="another training run"):
        _train(tmp_path / "run", _config(steps=6, batch_size=4))
    _train(tmp_path / "run", _config(steps=6, validate_every=2))  # bookkeeping may change
    _train(tmp_path / "run", _config(steps=8, learning_rate=1e-4))  # a decay phase may too
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").open()]
    lrs = {r["step"]: r["lr"] for r in records if "lr" in r}
    assert lrs[8] == pytest.approx(1e-4) and lrs[6] != pytest.approx(1e-4)


def test_a_corrupt_newest_state_falls_back_to_the_previous_one(tmp_path):
    run = tmp_path / "run"
    _train(run, _config(steps=3))
    good = {k: v.clone() for k, v in _state(run).items()}
    # a newer state whose weights were cut short, as a crash mid-write could leave
    (run / "state-000000004.safetensors").write_bytes(b"garbage")
    (run / "state-000000004.json").write_text((run / "state-000000003.json").read_text())
    _train(run, _config(steps=4))  # resumes from step 3 (state 4 is unreadable), trains one
    straight = tmp_path / "straight"
    _train(straight, _config(steps=4))
    assert [p.name for p in run.glob("state-*.json")] == ["state-000000004.json"]
    for key, value in _state(run).items():
        torch.testing.assert_close(value, _state(straight)[key], rtol=0, atol=0)
    assert any(not torch.equal(v, _state(run)[k]) for k, v in good.items())


def test_checkpoint_round_trip_and_clear_errors(tmp_path):
    model = _train(tmp_path / "run", _config(steps=3))
    loaded = load_model(tmp_path / "run")
    for key, value in model.denoiser.state_dict().items():
        torch.testing.assert_close(loaded.denoiser.state_dict()[key], value, rtol=0, atol=0)
    assert loaded.grid == GRID and loaded.data_scale == model.data_scale
    assert loaded.schedule == model.schedule and loaded.info["step"] == 3
    assert loaded.prior.to_config() == PRIOR.to_config()
    torch.testing.assert_close(loaded.sample(2, steps=5), model.sample(2, steps=5))
    # sample i does not depend on the batch it is drawn in
    torch.testing.assert_close(
        loaded.sample(3, steps=5, sampler="ddim", eta=1.0, batch_size=3)[2],
        loaded.sample(1, steps=5, sampler="ddim", eta=1.0, start=2)[0],
    )

    meta_path = tmp_path / "run" / "model.json"
    meta = json.loads(meta_path.read_text())
    with pytest.raises(CheckpointError, match="no model at"):
        load_model(tmp_path / "nowhere")
    meta_path.write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt checkpoint metadata"):
        load_model(tmp_path / "run")
    meta_path.write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(CheckpointError, match="format version 99"):
        load_model(tmp_path / "run")
    wider = dict(meta["network"], block_out_channels=[16, 48])
    meta_path.write_text(json.dumps({**meta, "network": wider}))
    with pytest.raises(CheckpointError, match=r"edited or is corrupt \(checksum mismatch\)"):
        load_model(tmp_path / "run")
    edited = {**meta, "network": wider}
    edited["meta_sha256"] = meta_checksum(edited)
    meta_path.write_text(json.dumps(edited))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(tmp_path / "run")
    meta_path.write_text(json.dumps(meta))
    weights = tmp_path / "run" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="checksum"):
        load_model(tmp_path / "run")


def test_cli_train_is_resumable_after_kill_9_and_samples(tmp_path):
    run = tmp_path / "run"
    args = [
        "--prior",
        "stationary-matern",
        "--grid",
        "16",
        "--network",
        "tiny",
        "--batch-size",
        "8",
        "--checkpoint-every",
        "2",
        "--validate-every",
        "1000",
        "--oracle-components",
        "4",
        "--out",
        str(run),
        "--quiet",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "geodiff", "train", *args, "--train-steps", "100000"], env=env
    )
    try:
        deadline = time.time() + 120
        while not list(run.glob("state-*.json")) and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the older state is deleted only after the newer is complete, so a kill between the
    # two leaves both: the run resumes from the newest
    states = list(run.glob("state-*.json"))
    assert 1 <= len(states) <= 2
    done = max(json.loads(state.read_text())["step"] for state in states)
    assert done >= 2 and done % 2 == 0
    assert main(["train", *args, "--train-steps", str(done + 2)]) == 0
    assert json.loads((run / "model.json").read_text())["info"]["step"] == done + 2

    out = tmp_path / "samples.nc"
    assert (
        main(
            [
                "sample",
                "--model",
                str(run),
                "--n",
                "3",
                "--steps",
                "4",
                "--out",
                str(out),
                "--plot",
                "--quiet",
            ]
        )
        == 0
    )
    from scipy.io import netcdf_file

    with netcdf_file(out, "r", mmap=False) as nc:
        assert nc.variables["fields"].shape == (3, 16, 16)
        assert np.isfinite(nc.variables["fields"][:]).all()
    assert out.with_suffix(".png").exists()
    ddim = tmp_path / "ddim.nc"
    assert (
        main(
            [
                "sample",
                "--model",
                str(run),
                "--n",
                "3",
                "--steps",
                "4",
                "--sampler",
                "ddim",
                "--eta",
                "1",
                "--out",
                str(ddim),
                "--quiet",
            ]
        )
        == 0
    )
    with netcdf_file(out, "r", mmap=False) as a, netcdf_file(ddim, "r", mmap=False) as b:
        assert b.sampler == b"ddim" and a.sampler == b"dpm2m"
        assert not np.allclose(a.variables["fields"][:], b.variables["fields"][:])
    assert (
        main(["sample", "--model", str(tmp_path / "missing"), "--n", "2", "--out", str(out)]) == 2
    )


@pytest.mark.slow
def test_ddp_with_torchrun_on_cpu(tmp_path):
    """Two gloo processes train one model; rank 0 alone writes the run."""
    run = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "geodiff",
        "train",
        "--prior",
        "stationary-matern",
        "--grid",
        "16",
        "--network",
        "tiny",
        "--batch-size",
        "4",
        "--train-steps",
        "4",
        "--checkpoint-every",
        "2",
        "--validate-every",
        "4",
        "--oracle-components",
        "4",
        "--device",
        "cpu",
        "--out",
        str(run),
        "--quiet",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(cmd, check=True, env=env, timeout=600)
    spec = json.loads((run / "run.json").read_text())
    assert spec["world_size"] == 2
    records = [json.loads(x) for x in (run / "metrics.jsonl").open()]
    assert [r["step"] for r in records if "loss" in r] == [4]  # logged once, by rank 0
    assert load_model(run).info["step"] == 4


def test_training_from_a_store_reshuffles_each_epoch(tmp_path):
    from geodiff.diffusion.data import StoredFields
    from geodiff.fields.store import open_store, write_store

    store = open_store(
        write_store(
            tmp_path / "f.zarr", PRIOR, GRID, 12, seed=3, chunk_size=6, workers=1, progress=False
        )
    )
    data = StoredFields(store, batch_size=4, seed=0)
    epoch0 = torch.cat([data(k) for k in range(3)])
    epoch1 = torch.cat([data(k) for k in range(3, 6)])
    stored = torch.from_numpy(np.asarray(store.fields[:]))[:, None]
    key = lambda x: sorted(x.reshape(len(x), -1).sum(1).tolist())  # noqa: E731
    assert key(epoch0) == key(stored) == key(epoch1)  # each epoch is a permutation
    assert not torch.equal(epoch0, epoch1)
    torch.testing.assert_close(data(4), StoredFields(store, 4, seed=0)(4))  # a function of step
    assert (
        main(
            [
                "train",
                "--data",
                str(tmp_path / "f.zarr"),
                "--network",
                "tiny",
                "--train-steps",
                "2",
                "--batch-size",
                "4",
                "--oracle-components",
                "4",
                "--out",
                str(tmp_path / "run"),
                "--quiet",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "run" / "run.json").read_text())["data"]["kind"] == "store"
    assert (
        main(["train", "--data", str(tmp_path / "missing.zarr"), "--out", str(tmp_path / "r2")])
        == 2
    )
