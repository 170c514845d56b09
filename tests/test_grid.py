import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from geodiff import GeodiffError, Grid


def test_points_follow_field_layout():
    grid = Grid((3, 4), ((0.0, 3.0), (10.0, 12.0)))
    pts = grid.points()
    assert pts.shape == (12, 2)
    field = np.arange(12.0).reshape(3, 4)  # field[i, j] at (x[j], y[i])
    i, j = 2, 1
    assert_allclose(pts[field.ravel().tolist().index(field[i, j])], [grid.x[j], grid.y[i]])
    assert grid.x[0] == 0.0 and grid.x[-1] == 3.0 and grid.y[-1] == 12.0
    assert grid.spacing == (1.0, 1.0)


@pytest.mark.parametrize("method", ["bilinear", "nearest"])
def test_interpolation_at_nodes_is_exact(method):
    grid = Grid((5, 7), ((-1.0, 2.0), (0.0, 1.0)))
    fields = torch.randn(3, 5, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    values = grid.interpolate(fields, grid.points(), method)
    assert_allclose(values.numpy(), fields.reshape(3, -1).numpy(), atol=1e-12)


def test_bilinear_reproduces_linear_functions():
    # bilinear interpolation is exact for a + b x + c y + d x y
    grid = Grid((6, 9), ((0.0, 2.0), (-1.0, 1.0)))
    xx, yy = np.meshgrid(grid.x, grid.y)
    f = 1.0 + 2.0 * xx - 3.0 * yy + 0.5 * xx * yy
    rng = np.random.default_rng(1)
    pts = np.column_stack([rng.uniform(0, 2, 50), rng.uniform(-1, 1, 50)])
    pts = np.vstack([pts, [[0.0, -1.0], [2.0, 1.0], [2.0, -1.0]]])  # corners too
    got = grid.interpolate(torch.tensor(f), pts).numpy()
    x, y = pts[:, 0], pts[:, 1]
    assert_allclose(got, 1.0 + 2.0 * x - 3.0 * y + 0.5 * x * y, atol=1e-12)


def test_operator_rows_sum_to_one_and_nearest_picks_nearest():
    grid = Grid.square(4)
    pts = np.array([[0.1, 0.1], [0.9, 0.45], [0.5, 0.5]])
    matrix = grid.interpolation_matrix(pts, "bilinear").to_dense()
    assert matrix.shape == (3, 16)
    assert_allclose(matrix.sum(1).numpy(), 1.0)
    nearest = grid.interpolation_matrix(pts, "nearest").to_dense().numpy()
    nodes = grid.points()
    for row, p in zip(nearest, pts, strict=True):
        assert np.argmax(row) == np.argmin(np.linalg.norm(nodes - p, axis=1))


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([[0.5, 1.2]], "outside"),
        ([[np.nan, 0.2]], "NaN"),
        ([0.5, 0.5], "shape"),
    ],
)
def test_bad_points_are_rejected(points, message):
    with pytest.raises(GeodiffError, match=message):
        Grid.square(8).interpolation_matrix(points)


@pytest.mark.parametrize("text", ["0", "1", "abc", "4x", "3x1x2", "-8"])
def test_invalid_grid_text(text):
    with pytest.raises(GeodiffError):
        Grid.parse(text)


def test_parse_and_invalid_extent():
    assert Grid.parse("16x8").shape == (16, 8)
    with pytest.raises(GeodiffError, match="min < max"):
        Grid((4, 4), ((1.0, 0.0), (0.0, 1.0)))
