"""Fort & Jastrzebski's low-loss subspace: the polytope's geometry, its grid map, diversity."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from modeconn.evaluation.ensemble import diversity
from modeconn.paths import ParameterSpace
from modeconn.paths.subspace import SubspacePath, barycentric_grid
from modeconn.runners.subspace import neighbourhood_coords


def _space(dim: int = 7) -> ParameterSpace:
    return ParameterSpace(nn.ParameterDict({"w": nn.Parameter(torch.zeros(dim))}))


def _path(count: int = 3, trained: bool = True) -> SubspacePath:
    g = torch.Generator().manual_seed(0)
    modes = [torch.randn(7, generator=g) for _ in range(count)]
    path = SubspacePath(_space(), modes)
    if trained:                                   # connectors pushed off the flat polytope
        path.free.data += torch.randn(path.free.shape, generator=g)
    return path


def test_polytope_is_every_triangle_of_an_optimum_its_pair_connector_and_the_centre():
    path = _path(4)
    assert path.modes == 4 and path.coord_dim == 4 + 6 + 1
    assert len(path.simplexes) == 4 * 3
    for simplex in path.simplexes:
        mode, edge, centre = simplex
        assert mode < 4 and centre == path.centre
        i, j = path.pairs[edge - 4]
        assert mode in (i, j)
    with pytest.raises(ValueError, match="at least 3"):
        SubspacePath(_space(), [torch.zeros(7), torch.ones(7)])


def test_untrained_connectors_make_the_surface_the_flat_triangle():
    path = _path(3, trained=False)
    lam = barycentric_grid(6)
    modes = path.vertex_tensor([0, 1, 2])
    surface = torch.stack([path.vector(c) for c in path.triangle_coords((0, 1, 2), lam)])
    assert torch.allclose(surface, lam.float() @ modes, atol=1e-5)


def test_triangle_map_hits_optima_edges_and_centre_and_is_continuous():
    path = _path(3)
    v = path.vertex_tensor()
    corners = torch.eye(3, dtype=torch.float64)
    coords = path.triangle_coords((0, 1, 2), corners)
    for k in range(3):
        assert torch.allclose(path.vector(coords[k]), v[k])
    middle = path.triangle_coords((0, 1, 2), torch.tensor([[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]]))
    assert torch.allclose(path.vector(middle[0]), v[path.edge(0, 1)], atol=1e-6)
    assert torch.allclose(path.vector(middle[1]), v[path.centre], atol=1e-6)
    # an edge of the reference triangle maps onto the PolyChain m_0 -> e_01 -> m_1
    s = torch.linspace(0, 1, 11, dtype=torch.float64)
    edge = path.triangle_coords((0, 1, 2), torch.stack([1 - s, s, 0 * s], 1))
    assert torch.all(edge[:, [2, path.edge(0, 2), path.edge(1, 2), path.centre]] == 0)
    # coordinates are convex and the map is continuous across the sub-triangles' borders
    lam = barycentric_grid(30)
    c = path.triangle_coords((0, 1, 2), lam)
    assert (c >= -1e-6).all() and torch.allclose(c.sum(1), torch.ones(len(c)), atol=1e-6)
    eps = 1e-6
    border = torch.tensor([[0.4, 0.4, 0.2]], dtype=torch.float64)
    nudged = border + torch.tensor([[eps, -eps, 0.0]], dtype=torch.float64)
    assert torch.allclose(path.vector(path.triangle_coords((0, 1, 2), border)[0]),
                          path.vector(path.triangle_coords((0, 1, 2), nudged)[0]), atol=1e-4)


def test_barycentric_grid_covers_the_triangle():
    lam = barycentric_grid(10)
    assert lam.shape == (66, 3) and torch.allclose(lam.sum(1), torch.ones(66, dtype=torch.float64))
    assert len({tuple(r) for r in lam.tolist()}) == 66


def test_neighbourhood_points_stay_near_mode_0_on_the_surface():
    path = _path(3)
    coords = neighbourhood_coords(path, 6, 0.3, torch.Generator().manual_seed(0))
    assert torch.allclose(coords.sum(1), torch.ones(6)) and (coords >= 0).all()
    assert (coords[:, 0] >= 0.7 - 1e-6).all()
    for row in coords:                           # inside one triangle of the polytope
        support = set(row.nonzero().flatten().tolist())
        assert any(support <= set(s) for s in path.simplexes)


def test_diversity_counts_disagreements_and_the_ensemble_gain():
    y = torch.tensor([0, 1, 1, 0])
    a = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]], dtype=torch.float64)
    b = torch.tensor([[0.8, 0.2], [0.4, 0.6], [0.3, 0.7], [0.4, 0.6]], dtype=torch.float64)
    same = diversity([a, a], y)
    assert same["disagreement"] == 0 and same["gain"] == pytest.approx(0)
    d = diversity([a, b], y)
    assert d["disagreement"] == pytest.approx(50.0)               # rows 3 and 4 differ
    assert d["member_test_err_mean"] == pytest.approx(25.0)       # a misses row 3, b row 4
    assert d["ensemble_test_err"] == pytest.approx(0.0)           # the average gets all four
    assert d["gain"] == pytest.approx(25.0)


def test_subspace_run_records_grid_flat_and_diversity(run_config, tmp_path):
    from modeconn.app import run
    from modeconn.results import validate
    results = run(run_config("dataset=digits", "method=subspace", "method.grid=3", "method.points=5"))
    assert results["status"] == "ok" and not validate(results)
    s = results["subspace"]
    assert s["modes"] == 3 and s["connectors"] == 4 and len(s["triangles"]) == 1
    assert len(s["triangles"][0]["subspace_test_err"]) == 10
    # the grid's corners are the optima themselves, on the surface and on the flat triangle
    corners = [i for i, lam in enumerate(s["barycentric"]) if max(lam) == 1.0]
    optima = sorted(e["test_err"] for e in results["endpoints"])
    for kind in ("subspace", "flat"):
        assert sorted(s["triangles"][0][f"{kind}_test_err"][i] for i in corners) == pytest.approx(optima, abs=1e-6)
    assert set(s["diversity"]) >= {"different_optima", "one_optimum_neighbourhood", "subspace_samples"}
    assert (tmp_path / "run" / "subspace.png").stat().st_size > 0
    assert len(results["path"]["t"]) == 5


def test_endpoint_records_carry_their_radius_and_start(run_config):
    """Fort's radius study reads these: |w|, |w_0| of the same seed's initialisation, |w - w_0|."""
    from modeconn.app import run
    from modeconn.data import load_dataset
    from modeconn.training.endpoints import initial_model
    cfg = run_config("dataset=digits", "method=linear", "method.points=3")
    results = run(cfg)
    init = initial_model(cfg, load_dataset(cfg.dataset, torch.device("cpu")), 1)
    w0 = torch.cat([p.detach().reshape(-1) for p in init.parameters()])
    e = results["endpoints"][1]
    assert e["init_radius"] == pytest.approx(float(w0.norm()), rel=1e-5)
    assert e["distance_from_init"] > 0 and e["radius"] > 0


def test_untrained_subspace_run_equals_the_flat_triangle(run_config):
    from modeconn.app import run
    results = run(run_config("dataset=digits", "method=subspace", "method.grid=2", "method.points=3",
                             "method.train.epochs=0"))
    t = results["subspace"]["triangles"][0]
    assert t["subspace_test_err"] == pytest.approx(t["flat_test_err"], abs=1e-6)
