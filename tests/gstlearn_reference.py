"""Outside reference: unconditional Matern(nu=1) simulations with gstlearn's SPDE engine.

Conventions (each verified numerically against GSTools and scipy when this was written):
  * gstlearn Matern "scale" (Model.createFromParam(..., flagRange=False), CovAniso.setScale)
    is 1/kappa, and C(h) = 2^(1-nu)/Gamma(nu) (h/scale)^nu K_nu(h/scale); for nu = 1 this
    equals GSTools' len_scale (GSTools uses sqrt(nu) * h / len_scale).  gstlearn's "range"
    is the practical range = scale * 2*sqrt(3) for nu = 1 (do not use it here).
  * ranges/scales[0] is the main axis, rotated by angles[0] DEGREES counter-clockwise from
    the x axis (rotation matrix [[c, -s], [s, c]]).
  * DbGrid: x (first coordinate) varies fastest, so a column reshapes directly to (H, W).
  * Non-stationary angle: CovAniso.makeAngleNoStatDb(colname, 0, db) with the angle in degrees,
    same convention as the stationary angle.  Values are picked at mesh vertices from the
    nearest cell of the NoStat DbGrid; vertices outside that grid get the MEAN of the column,
    so we hand over an edge-padded grid covering the whole (extended) mesh.

Engine: we build explicitly (MeshETurbo.createFromCova, as simulateSPDE does internally) a
regular triangulated grid rotated along the anisotropy axes, cell = practical_range / refine
per axis, extended by `border` cells on each side, and pass it to simulateSPDE.  With a
NoStat angle gstlearn makes that mesh isotropic with the smallest cell size (still rotated
by the stationary angle, i.e. angle_rad).  With Cholesky (2D default, forced here with
useCholesky=1) simulateSPDE draws EXACTLY from the discretised GMRF
(Q = Lambda P(S) Lambda, integer alpha = nu + d/2 = 2, sparse Cholesky);
no Chebyshev approximation.  Values at grid nodes are then obtained by linear (P1)
interpolation from the mesh vertices.  Outer boundary: natural (Neumann) FEM boundary of the
extended mesh, hence the `margin` (in scale units) of extension.  gstlearn's own default
(SPDEParam border = 8 cells = 1.54 scales) leaves a visible boundary effect (+5..10 %
variance at grid corners lying on the main axis); margin=3 removes it.

Accuracy of the discretised model (exact A Q^-1 A^T, see spde_discretised_cov), 64x64 grid,
scales 6 / 1.8, angle 30 deg, refine=18:
  stationary (mesh rotated with the anisotropy): node variance 0.977..1.021 (mean 0.990),
  covariance errors <= 0.004 at lags 1..5;
  NoStat (isotropic mesh, cell = minor cell, angle_rad=0): variance 0.937 for a local
  axis at 30 deg to the mesh (0.988 for 0 / 90 deg, mesh-aligned); error is O(h^2)
  (0.970 with cell 0.25).
  Use refine=27..36 for NoStat if that matters (100 sims 64x64: ~15 s / ~40 s vs ~6 s).
"""

import math

import gstlearn as gl
import numpy as np

_MATERN1_RANGE_FACTOR = 2.0 * math.sqrt(3.0)  # practical range / scale for nu = 1 in gstlearn


def _setup(shape, spacing, scale_main, scale_minor, angle_rad, angle_map, refine, margin):
    H, W = (int(s) for s in shape)
    spacing = float(spacing)
    smain, sminor = float(scale_main), float(scale_minor)
    grid = gl.DbGrid.create(nx=[W, H], dx=[spacing, spacing], x0=[0.0, 0.0])
    model = gl.Model.createFromParam(
        gl.ECov.MATERN,
        param=1.0,
        sill=1.0,
        ranges=[smain, sminor],
        angles=[math.degrees(float(angle_rad)), 0.0],
        flagRange=False,
    )
    cova = model.getCovAniso(0)

    # Mesh (MeshETurbo.initFromCova): cell size along anisotropy axis k is
    # scale_k * 2 sqrt(3) / refine, extended by `border` cells (same count on both axes).
    # Stationary: extension = margin * scale_k along axis k, i.e. Mahalanobis distance
    # >= margin from the grid to the mesh boundary.  NoStat angle: gstlearn uses an
    # isotropic mesh with the smallest cell size, and the local main axis can point
    # anywhere -> Euclidean extension >= margin * scale_main.
    dxmin = min(smain, sminor) * _MATERN1_RANGE_FACTOR / refine
    if angle_map is None:
        border = math.ceil(margin * refine / _MATERN1_RANGE_FACTOR)
    else:
        border = math.ceil(margin * max(smain, sminor) / dxmin)
        amap = np.asarray(angle_map, dtype=float)
        if amap.shape != (H, W):
            raise ValueError(f"angle_map must have shape {(H, W)}, got {amap.shape}")
        # NoStat grid: same nodes as the output grid, edge-padded so that it covers the
        # whole extended mesh (vertices outside it would get the MEAN angle).  Values are
        # taken from the nearest node (so a jump between nodes j and j+1 sits at x=j+1/2).
        pad = math.ceil((border * dxmin * 1.5) / spacing) + 4
        apad = np.pad(np.degrees(amap), pad, mode="edge")
        nsgrid = gl.DbGrid.create(
            nx=[W + 2 * pad, H + 2 * pad],
            dx=[spacing, spacing],
            x0=[-pad * spacing, -pad * spacing],
        )
        nsgrid["angle_deg"] = apad.ravel()  # x fastest == row-major (H, W) ravel
        cova.makeAngleNoStatDb("angle_deg", 0, nsgrid)
    mesh = gl.MeshETurbo.createFromCova(cova, grid, float(refine), border, False, True, 0)
    if mesh is None:
        raise RuntimeError("gstlearn MeshETurbo.createFromCova failed")
    return grid, model, cova, mesh


def spde_simulate(
    shape,
    spacing,
    scale_main,
    scale_minor,
    angle_rad,
    n,
    seed,
    angle_map=None,
    refine=18,
    margin=3.0,
):
    """Unconditional simulations of a zero-mean, unit-sill Matern nu=1 field with gstlearn's SPDE
    engine on a regular grid of shape (H, W) (rows along y, columns along x, node (i, j) at
    x = j*spacing, y = i*spacing).

    scale_main / scale_minor: GSTools-convention length scales of main / minor axes
    (correlation rho(sqrt(nu) d), d = sqrt(h^T Sigma^-1 h),
    Sigma = R(angle) diag(scale_main^2, scale_minor^2) R(angle)^T, angle CCW from x, radians).
    angle_map: optional (H, W) array of a spatially varying main-axis angle (radians, same
    convention) -> non-stationary simulation (gstlearn NoStat on the rotation angle;
    angle_rad is then only used to orient the (isotropic) mesh).
    refine: mesh cells per PRACTICAL range along each anisotropy axis (gstlearn's
    SPDEParam refineS, default 18 = about 5.2 cells per scale; with angle_map the mesh is
    isotropic with the minor-axis cell size).
    margin: extension of the SPDE mesh beyond the grid, in scale units (see _setup).
    Returns numpy array (n, H, W).
    """
    H, W = (int(s) for s in shape)
    n = int(n)
    grid, model, _cova, mesh = _setup(
        shape, spacing, scale_main, scale_minor, angle_rad, angle_map, refine, margin
    )
    meshes = gl.VectorMeshes([mesh])
    gl.law_set_random_seed(int(seed))
    # NB (gstlearn 1.11.1): the non-conditional simulation uses `meshesS`; passing only
    # `meshesK` is silently ignored (a default mesh, border 8 cells, is built instead).
    err = gl.simulateSPDE(
        None,
        grid,
        model,
        nbsimu=n,
        useCholesky=1,
        meshesK=meshes,
        meshesS=meshes,
        namconv=gl.NamingConvention("ref"),
    )
    if err:
        raise RuntimeError("gstlearn simulateSPDE failed")
    names = list(grid.getNamesByLocator(gl.ELoc.Z))
    if len(names) != n:
        raise RuntimeError(f"expected {n} simulations, got {len(names)}")
    out = np.empty((n, H, W))
    for k, name in enumerate(names):
        out[k] = np.asarray(grid.getColumn(name)).reshape(H, W)
    return out


def spde_discretised_cov(
    shape, spacing, scale_main, scale_minor, angle_rad, nodes, angle_map=None, refine=18, margin=3.0
):
    """EXACT covariance of the discretised gstlearn model that spde_simulate samples from
    (same mesh, same Q): rows A Q^-1 A^T for the grid nodes `nodes` = [(i, j), ...].
    Returns array (len(nodes), H, W) (covariance of node (i, j) with every grid node).
    No Monte Carlo: use it to separate discretisation error from sampling error."""
    import scipy.sparse as sps
    import scipy.sparse.linalg as spla

    H, W = (int(s) for s in shape)
    grid, _model, cova, mesh = _setup(
        shape, spacing, scale_main, scale_minor, angle_rad, angle_map, refine, margin
    )
    pop = gl.PrecisionOpMatrix(mesh, cova)  # keep references alive (SWIG ownership)
    qmat = pop.getQ()
    Q = sps.csc_matrix(qmat.toTL())
    proj = gl.ProjMatrix(grid, mesh)
    A = sps.csr_matrix(proj.toTL())
    lu = spla.splu(Q)
    out = np.empty((len(nodes), H, W))
    for k, (i, j) in enumerate(nodes):
        x = lu.solve(A[int(i) * W + int(j)].toarray().ravel())
        out[k] = (A @ x).reshape(H, W)
    return out
