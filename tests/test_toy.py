"""Fort & Jastrzebski's wedge model: the landscape's geometry and the three predictions."""
from __future__ import annotations

import math

import pytest
import torch

from modeconn.toy import WedgeLandscape, WedgeSpec
from modeconn.toy.experiments import cut_study, find_optima, line_vs_path, radius_study


@pytest.fixture(scope="module")
def landscape():
    return WedgeLandscape(WedgeSpec())


def test_loss_is_zero_inside_a_wedge_and_grows_outside(landscape):
    g = torch.Generator().manual_seed(1)
    for wedge in range(landscape.spec.wedges):
        inside = landscape.point_in(wedge, radius=5.0, depth=0.9, generator=g)
        assert landscape.loss(inside) == 0
        basis = landscape.bases[wedge]
        short = torch.randn(landscape.dim, generator=g, dtype=torch.float64)
        short = short - basis @ (basis.T @ short)
        short = short / short.norm()
        along = basis @ (basis.T @ inside)
        offsets = torch.linspace(2.0, 6.0, 9, dtype=torch.float64)      # beyond the width 0.4 * 4 = 1.6
        losses = landscape.distances(along + offsets[:, None] * short)[:, wedge]
        assert (losses > 0).all() and (losses.diff() > 0).all()


def test_width_grows_with_radius(landscape):
    radii = torch.tensor([1.5, 3.0, 10.0, 30.0])
    assert (landscape.width(radii).diff() > 0).all()
    g = torch.Generator().manual_seed(2)
    for r in radii.tolist():
        # a point just inside the width at radius r is in the wedge, just outside is not
        edge = landscape.point_in(0, r, depth=0.99, generator=g)
        out = landscape.point_in(0, r, depth=1.05, generator=g)
        assert landscape.distances(edge)[0] == 0 and landscape.distances(out)[0] > 0


def test_distance_matches_a_brute_force_projection():
    """In R^3 with a 2-D long plane the wedge can be sampled densely: the closest sample
    must match the closed-form distance (up to the sampling's resolution)."""
    spec = WedgeSpec(dim=3, long_dim=2, wedges=1, slope=0.5, r0=1.0, seed=3)
    land = WedgeLandscape(spec)
    basis = land.bases[0]
    normal = torch.linalg.svd(basis.T, full_matrices=True).Vh[-1]
    a = torch.linspace(spec.r0, 9.0, 160, dtype=torch.float64)    # nearest points of |q| < 4 lie within
    theta = torch.linspace(0, 2 * math.pi, 240, dtype=torch.float64)
    frac = torch.linspace(-1, 1, 41, dtype=torch.float64)
    A, T, F = torch.meshgrid(a, theta, frac, indexing="ij")
    long = torch.stack([A * T.cos(), A * T.sin()], -1) @ basis.T
    cloud = (long + (F * spec.slope * (A - spec.r0))[..., None] * normal).reshape(-1, 3)
    g = torch.Generator().manual_seed(0)
    queries = 2 * torch.randn(60, 3, generator=g, dtype=torch.float64)
    queries = queries[queries.norm(dim=1) < 4]
    brute = torch.cdist(queries, cloud).min(1).values
    exact = land.distances(queries)[:, 0]
    assert (exact <= brute + 1e-9).all()                      # never farther than a point of the wedge
    assert torch.allclose(exact, brute, atol=0.05)            # inside points: the spacing of the samples


def test_prediction_1_lines_leave_the_wedges_paths_cross_at_an_intersection(landscape):
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    optima = find_optima(landscape, runs=8, start_radius=0.5, lr=0.1, steps=300, noise=1.0, generator=g)
    assert landscape.loss(optima).max() < 1e-8
    record, _ = line_vs_path(landscape, optima, pairs=1, num_bends=3, steps=400, lr=0.05, generator=g)
    pair = record["pairs"][0]
    assert pair["wedges"][0] != pair["wedges"][1]
    assert pair["linear_max_loss"] > 1.0
    assert pair["path_max_loss"] < 1e-6
    assert pair["crossing_distance"] < 1e-3                  # a point of the path lies in both wedges


def test_prediction_2_farther_cuts_need_fewer_dimensions(landscape):
    g = torch.Generator().manual_seed(0)
    cuts = cut_study(landscape, dims=[10, 20, 30], radii=[1.5, 20.0], count=16, reach=1.0, steps=200, lr=0.05,
                     threshold=0.01, generator=g)
    near, far = cuts["success"]
    assert all(f >= n for n, f in zip(near, far)) and sum(far) > sum(near) + 0.5
    needed_near, needed_far = cuts["dim_needed"]
    assert needed_far is not None and (needed_near is None or needed_far < needed_near)


def test_prediction_3_larger_steps_travel_farther_l2_less(landscape):
    g = torch.Generator().manual_seed(0)
    study = radius_study(landscape, lrs=[0.02, 0.1, 0.5], l2s=[0.0, 0.1], runs=8, steps=300, start_radius=0.5,
                         noise=1.0, generator=g)
    radius = torch.tensor(study["final_radius"])               # (lrs, l2s)
    assert (radius.diff(dim=0) > 0).all()                      # larger learning rate -> farther
    assert (radius[:, 1] < radius[:, 0]).all()                 # more L2 -> nearer


def test_toy_run_writes_its_section_and_pictures(run_config, tmp_path):
    from modeconn.app import run
    from modeconn.results import validate
    cfg = run_config("experiment=fort2019_toy", "method.optima.runs=6", "method.connect.pairs=1",
                     "method.cuts.dims=[20]", "method.cuts.radii=[2.0]", "method.cuts.count=4",
                     "method.radius.lrs=[0.1]", "method.radius.l2s=[0.0]", "method.radius.steps=50")
    results = run(cfg)
    assert results["status"] == "ok" and not validate(results)
    assert results["dataset"] == "toy" and results["arch"] == "wedges"
    toy = results["toy"]
    assert toy["connect"]["linear_max_loss_mean"] > toy["connect"]["path_max_loss_mean"]
    for name in toy["files"]:
        assert (tmp_path / "run" / name).stat().st_size > 0
