"""Observations and observation operators against exact values."""

import numpy as np
import pytest
import torch

from geodiff import GeodiffError, Grid, load_prior
from geodiff.observe import Observations, block_mean_operator, point_operator

GRID = Grid((9, 13), ((-1.0, 3.0), (0.0, 2.0)))


def _bilinear_function(points):
    x, y = points[..., 0], points[..., 1]
    return 0.5 - 1.5 * x + 2.0 * y + 0.75 * x * y


def _grid_field(fn, grid=GRID):
    return torch.as_tensor(fn(grid.points()).reshape(grid.shape))


def test_point_operator_on_grid_is_the_interpolation_matrix():
    pts = np.array([[0.1, 0.3], [2.9, 1.99], [-1.0, 0.0], [1.0, 1.0]])
    op = point_operator(pts)
    dense = op.grid_matrix(GRID).to_dense()
    expected = GRID.interpolation_matrix(pts).to_dense()
    torch.testing.assert_close(dense, expected, rtol=0, atol=1e-15)
    # the compact on-grid operator reads the same values from a field
    field = _grid_field(_bilinear_function)
    on_grid = op.on_grid(GRID)
    values = on_grid.apply(field.reshape(-1)[_nodes(on_grid.support)])
    torch.testing.assert_close(values, torch.as_tensor(_bilinear_function(pts)), rtol=0, atol=1e-12)


def _nodes(points):
    return GRID.interpolation_weights(points, "nearest")[1]


def test_grid_block_means_integrate_the_bilinear_interpolant_exactly():
    # the interpolant of a bilinear function is itself; its mean over a rectangle is
    # its value at the centre (the xy term factorises into the two axis means)
    blocks = np.array([[0.05, 0.4, 0.1, 0.9], [-1.0, 3.0, 0.0, 2.0], [1.3, 1.31, 1.2, 1.9]])
    a = block_mean_operator(blocks).grid_matrix(GRID).to_dense()
    field = _grid_field(_bilinear_function).reshape(-1)
    centres = np.stack([blocks[:, :2].mean(1), blocks[:, 2:].mean(1)], 1)
    torch.testing.assert_close(
        a @ field, torch.as_tensor(_bilinear_function(centres)), atol=1e-12, rtol=0
    )
    torch.testing.assert_close(a.sum(1), torch.ones(3, dtype=a.dtype), atol=1e-14, rtol=0)


def test_continuous_block_means_are_exact_for_polynomials():
    # Gauss-Legendre of order 3 per axis integrates x^5 y^4 exactly
    op = block_mean_operator([[0.2, 0.7, 0.1, 0.4]], order=3)
    x, y = op.support[:, 0], op.support[:, 1]
    value = op.apply(torch.as_tensor(x**5 * y**4))
    exact = (0.7**6 - 0.2**6) / 6 / 0.5 * (0.4**5 - 0.1**5) / 5 / 0.3
    assert float(value[0]) == pytest.approx(exact, rel=1e-12)


def test_operator_covariance_is_weighted_point_covariance():
    prior = load_prior("nonstationary-anisotropy")
    theta = prior.sample_theta(1, 4)
    op = block_mean_operator([[0.1, 0.3, 0.2, 0.5], [0.6, 0.9, 0.6, 0.7]], order=2).on_grid(
        Grid.square(8)
    )
    cov = op.covariance(prior, theta)[0].numpy()
    points = op.support
    w = op.weights.toarray()
    expected = np.zeros((2, 2))
    for i in range(2):
        for j in range(2):
            for a in range(len(points)):
                for b in range(len(points)):
                    c = prior.covariance(points[a : a + 1], points[b : b + 1], theta)[0, 0, 0]
                    expected[i, j] += w[i, a] * w[j, b] * float(c)
    np.testing.assert_allclose(cov, expected, rtol=1e-12)


def test_csv_round_trip(tmp_path):
    obs = Observations.at_points([[0.1, 0.2], [0.5, 0.5]], [1.5, -0.25], [0.1, 0.0])
    back = Observations.from_csv(obs.to_csv(tmp_path / "obs.csv"))
    np.testing.assert_array_equal(back.locations, obs.locations)
    np.testing.assert_array_equal(back.values, obs.values)
    np.testing.assert_array_equal(back.noise_sd, obs.noise_sd)
    blocks = Observations.of_blocks([[0, 0.5, 0, 0.5]], [2.0], 0.2)
    back = Observations.from_csv(blocks.to_csv(tmp_path / "blocks.csv"))
    assert back.operator.kind == "blocks"
    np.testing.assert_array_equal(back.operator.blocks, blocks.operator.blocks)


def test_csv_noise_argument_and_extra_columns(tmp_path):
    path = tmp_path / "obs.csv"
    path.write_text("# a comment\nid,X,Y,Value\n1,0.1,0.2,3.0\n2,0.3,0.4,4.0\n")
    with pytest.raises(GeodiffError, match="noise"):
        Observations.from_csv(path)
    obs = Observations.from_csv(path, noise_sd=0.5)
    np.testing.assert_array_equal(obs.noise_sd, [0.5, 0.5])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("x,y,value,noise_sd\n0.1,0.2,nan,0\n", "NaN"),
        ("x,y,value,noise_sd\n0.1,0.2,abc,0\n", r"line 2: value = 'abc' is not a number"),
        ("x,value\n0.1,2\n", "missing column"),
        ("x,y,value,noise_sd\n0.1,0.2,1,-1\n", "noise standard deviation"),
        ("x,y,value,noise_sd\n", "no observations"),
        ("", "empty file"),
        ("x,y,value,noise_sd\n0.1,0.2,1,0\n0.1,0.2,2,0\n", "more than once"),
        ("x,y,value,noise_sd\ninf,0.2,1,0\n", "NaN or infinite"),
    ],
)
def test_bad_csv_gives_clear_errors(tmp_path, text, match):
    path = tmp_path / "obs.csv"
    path.write_text(text)
    with pytest.raises(GeodiffError, match=match):
        Observations.from_csv(path)


def test_missing_file():
    with pytest.raises(GeodiffError, match="no such file"):
        Observations.from_csv("/nonexistent/obs.csv")


def test_duplicates_merge_to_their_mean():
    obs = Observations.at_points(
        [[0.1, 0.2], [0.5, 0.5], [0.1, 0.2]], [1.0, 5.0, 2.0], [0.3, 0.1, 0.4], duplicates="merge"
    )
    assert len(obs) == 2
    np.testing.assert_array_equal(obs.locations, [[0.1, 0.2], [0.5, 0.5]])
    np.testing.assert_allclose(obs.values, [1.5, 5.0])
    np.testing.assert_allclose(obs.noise_sd, [0.25, 0.1])  # sqrt(0.09 + 0.16) / 2
    with pytest.raises(GeodiffError, match="noiseless"):
        Observations.at_points([[0, 0], [0, 0]], [1.0, 2.0], 0.0, duplicates="merge")
    same = Observations.at_points([[0, 0], [0, 0]], [1.0, 1.0], 0.0, duplicates="merge")
    assert len(same) == 1


def test_invalid_observations():
    with pytest.raises(GeodiffError, match="expected 2 values"):
        Observations.at_points([[0, 0], [1, 1]], [1.0])
    with pytest.raises(GeodiffError, match="shape"):
        Observations.at_points([0.0, 1.0], [1.0, 2.0])
    with pytest.raises(GeodiffError, match="x_max <= x_min"):
        Observations.of_blocks([[0.5, 0.1, 0, 1]], [1.0])
    obs = Observations.at_points([[0.5, 0.5], [1.5, 0.2]], [1.0, 2.0])
    with pytest.raises(GeodiffError, match=r"outside the grid .* first #1 at \(1.5, 0.2\)"):
        obs.on_grid(Grid.square(8))
