"""The shipped models as package data, and how a model argument is resolved."""

import os
from pathlib import Path

import pytest

import geodiff.models
from geodiff.diffusion.model import load_model
from geodiff.errors import CheckpointError
from geodiff.models import DEMO_MODEL, MODEL_PATH_ENV, resolve_model, shipped_models

ROOT = Path(__file__).resolve().parents[1]
NAMES = [
    "heavy-tail-anisotropy-32",
    "nonstationary-anisotropy-32",
    "spde-anisotropy",
    "stationary-matern-32",
]


def test_shipped_models_live_in_the_package():
    models = shipped_models()
    assert sorted(models) == NAMES
    assert DEMO_MODEL in models
    for name, path in models.items():
        assert path.parent == Path(geodiff.models.__file__).parent
        assert (path / "model.json").is_file() and (path / "model.safetensors").is_file()
        # the documented clone paths still lead to the same files
        assert (ROOT / "data" / name).resolve() == path.resolve()


def test_existing_path_wins_over_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "stationary-matern-32").mkdir()
    assert resolve_model("stationary-matern-32") == Path("stationary-matern-32")
    assert resolve_model(ROOT / "data" / "stationary-matern-32") == ROOT / "data" / (
        "stationary-matern-32"
    )


def test_names_search_the_environment_then_the_shipped_models(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first, second = tmp_path / "a", tmp_path / "b"
    (second / "mine").mkdir(parents=True)
    (first / "stationary-matern-32").mkdir(parents=True)
    monkeypatch.setenv(MODEL_PATH_ENV, f"{first}{os.pathsep}{second}")
    assert resolve_model("mine") == second / "mine"
    assert resolve_model("stationary-matern-32") == first / "stationary-matern-32"
    assert resolve_model(DEMO_MODEL) == shipped_models()[DEMO_MODEL]
    monkeypatch.delenv(MODEL_PATH_ENV)
    assert resolve_model("stationary-matern-32") == shipped_models()["stationary-matern-32"]


def test_unknown_names_and_paths_list_the_shipped_models(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(MODEL_PATH_ENV, raising=False)
    for missing in ["no-such-model", "nowhere/model.json"]:
        with pytest.raises(CheckpointError, match="stationary-matern-32") as err:
            resolve_model(missing)
        assert all(name in str(err.value) for name in NAMES)


def test_load_model_takes_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = load_model("stationary-matern-32")
    assert model.grid.shape == (32, 32)
    assert model.prior_config["name"] == "stationary-matern"


def test_bfloat16_precision_keeps_the_denoiser_within_its_stated_error():
    """bfloat16 autocast changes x̂_0 by under 1e-2 of its size; float32 restores it exactly."""
    import torch

    from geodiff.errors import GeodiffError

    model = load_model(DEMO_MODEL)
    x = torch.randn(8, 1, *model.grid.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for t in (900, 300, 20):
            exact = model.denoiser(x, t)
            model.denoiser.set_precision("bfloat16")
            low = model.denoiser(x, t)
            model.denoiser.set_precision("float32")
            assert low.dtype == exact.dtype
            error = float((low - exact).norm() / exact.norm())
            assert not torch.equal(low, exact) and error < 1e-2, (t, error)  # rounding only
            assert torch.equal(model.denoiser(x, t), exact)
    assert load_model(DEMO_MODEL, precision="bfloat16").denoiser.precision == "bfloat16"
    with pytest.raises(GeodiffError, match="precision"):
        model.denoiser.set_precision("float16")


def test_a_model_carries_its_measured_sampler_settings_and_the_caller_overrides_them(tmp_path):
    from geodiff.observe import Observations
    from geodiff.posterior.predict import diffusion_posterior

    model = load_model("heavy-tail-anisotropy-32")
    assert model.posterior_defaults("mmps") == {"cg_iterations": 0}  # BENCHMARKS.md's choice
    assert model.posterior_defaults("daps") == {}
    obs = Observations.at_points([[0.3, 0.4], [0.7, 0.2]], [0.5, -0.2], 0.1)
    stored = diffusion_posterior(model, obs, draws=2, steps=3, seed=0)
    assert stored.info["options"]["cg_iterations"] == 0
    assert stored.info["per_draw"]["vjps"] == 0  # no Jacobian: the prior's Gaussian
    given = diffusion_posterior(model, obs, draws=2, steps=3, seed=0, cg_iterations=2)
    assert given.info["options"]["cg_iterations"] == 2
    assert given.info["per_draw"]["vjps"] > 0

    model.info["posterior_defaults"] = {"mmps": {"no_such_option": 1}}
    model.save(tmp_path)
    stale = load_model(tmp_path / "model.json")  # loads; the sampler refuses it when run
    with pytest.raises(CheckpointError, match=r"posterior_defaults.*no_such_option"):
        diffusion_posterior(stale, obs, draws=1, steps=2)
    model.info["posterior_defaults"] = {"mmps": 0}
    model.save(tmp_path)
    with pytest.raises(CheckpointError, match="posterior_defaults must map a sampler"):
        load_model(tmp_path / "model.json")
