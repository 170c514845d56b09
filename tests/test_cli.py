import subprocess
import sys

import pytest
from shared import MINIMAL_TOML

from geodiff.cli import main
from geodiff.fields.store import open_store, partial_path


def test_simulate_writes_store_and_plot(tmp_path, capsys):
    out = tmp_path / "fields.zarr"
    args = "simulate --prior nonstationary-anisotropy --grid 16 --n 6 --seed 1 --plot --quiet"
    code = main([*args.split(), "--out", str(out)])
    assert code == 0
    assert len(open_store(out)) == 6
    assert (tmp_path / "fields.png").stat().st_size > 10_000
    assert "wrote 6 fields" in capsys.readouterr().out


def test_priors_lists_shipped_configs(capsys):
    assert main(["priors"]) == 0
    listing = capsys.readouterr().out
    assert "stationary-matern" in listing and "nonstationary-anisotropy" in listing


def _config(tmp_path, text):
    path = tmp_path / "prior.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (
            lambda t: ["--prior", _config(t, MINIMAL_TOML.replace("0.2", "-0.2"))],
            "length_scale: must be > 0",
        ),
        (
            lambda t: ["--prior", _config(t, MINIMAL_TOML.replace('"matern"', '"bessel"'))],
            "unknown covariance family",
        ),
        (
            lambda t: ["--prior", _config(t, MINIMAL_TOML.replace('type = "stationary"', ""))],
            "missing key 'type'",
        ),
        (lambda t: ["--prior", "no-such-prior"], "no prior config"),
        (lambda t: ["--prior", "stationary-matern", "--grid", "1"], "grid shape must be"),
        (lambda t: ["--prior", "stationary-matern", "--grid", "big"], "grid must look like"),
    ],
)
def test_user_errors_give_one_line_and_no_store(tmp_path, capsys, make_args, message):
    out = tmp_path / "out.zarr"
    code = main(["simulate", *make_args(tmp_path), "--n", "2", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() and not partial_path(out).exists()


def test_unwritable_output_is_a_clean_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = subprocess.run(
        [sys.executable, "-m", "geodiff.cli", "simulate", "--prior", "stationary-matern",
         "--grid", "8", "--n", "2", "--out", str(blocker / "s"), "--quiet"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert "cannot create a store" in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_bad_numbers_are_rejected_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--prior", "stationary-matern", "--n", "0", "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    assert "expected an integer > 0, got" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("old", "new", "argv", "dest", "value"),
    [
        ("--prediction", "--target", ["train", "--prior", "stationary-matern", "--out", "o"],
         "target", "eps"),
        ("--methods", "--predictors", ["crossval", "--model", "m", "--obs", "o.csv", "--out",
         "t.md"], "predictors", "kriging-ok"),
    ],
)  # fmt: skip
def test_renamed_flags_keep_their_old_name_for_one_release(capsys, old, new, argv, dest, value):
    from geodiff.cli import build_parser as _parser

    args = _parser().parse_args([*argv, old, value])
    assert getattr(args, dest) == value
    assert capsys.readouterr().err.strip().endswith(f"{old} is deprecated; use {new}")
    assert getattr(_parser().parse_args([*argv, new, value]), dest) == value
    assert capsys.readouterr().err == ""  # the new name is silent


@pytest.mark.parametrize("mode", ["reml", "bayes"])
def test_noise_sd_with_a_mode_is_the_noise_flag_for_one_release(tmp_path, capsys, mode):
    from geodiff.cli import build_parser
    from geodiff.evaluate.tasks import read_observations

    argv = ["krige", "--obs", "o.csv", "--out", "k.csv"]
    args = build_parser().parse_args([*argv, "--noise-sd", mode])
    assert capsys.readouterr().err.strip() == (
        f"geodiff: warning: --noise-sd {mode} is now --noise {mode}"
    )
    csv = tmp_path / "o.csv"
    csv.write_text("x,y,value\n0.1,0.2,1\n0.4,0.5,2\n")
    old = read_observations(csv, args.noise_sd, noise=args.noise)
    new_args = build_parser().parse_args([*argv, "--noise", mode])
    new = read_observations(csv, new_args.noise_sd, noise=new_args.noise)
    assert old[1] == new[1] == mode and capsys.readouterr().err == ""
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--noise-sd", "plenty"])
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "geodiff krige: error: argument --noise-sd: expected a number >= 0, got 'plenty' "
        "(see geodiff krige --help)"
    )
