"""Benton et al. 2021: simplex volumes, Dirichlet sampling, SPRO growth, complexes, ESPRO runs."""
from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import compose_config, random_dataset
from modeconn.app import run
from modeconn.models import build_model
from modeconn.paths import ParameterSpace
from modeconn.paths.simplex import SimplicialComplexPath, flat_dirichlet, simplex_volume, squared_volume
from modeconn.results import read_results, validate
from modeconn.tracking import make_tracker
from modeconn.training.simplex import RANDOM_SIMPLEX_SEED, VOLUME_EPS, grow, volume_weight


def qr_volume(points: np.ndarray) -> float:
    """sqrt(det G) / k! for the Gram matrix G of the edge vectors, by QR (no distances, no Cayley-Menger)."""
    edges = (points[1:] - points[0]).T                      # D x k
    r = np.linalg.qr(edges, mode="r")
    return float(np.prod(np.abs(np.diag(r)))) / math.factorial(edges.shape[1])


@pytest.mark.parametrize("n", [2, 3, 4, 6])
@pytest.mark.parametrize("scale", [0.01, 1.0, 30.0])
def test_cayley_menger_volume_matches_the_gram_determinant(n, scale):
    rng = np.random.default_rng(n)
    points = rng.normal(size=(n, 20_000)) * scale / math.sqrt(20_000) + rng.normal(size=20_000)
    ours = math.sqrt(float(squared_volume(torch.from_numpy(points))))
    assert ours == pytest.approx(qr_volume(points), rel=1e-6)
    assert simplex_volume(torch.from_numpy(points)) == pytest.approx(ours, rel=1e-12)
    # the training penalty's float32 Gram matrix (same float32 edges) stays within 1e-4
    single = torch.from_numpy(points).float()
    assert float(squared_volume(single, exact=False)) == pytest.approx(float(squared_volume(single)), rel=1e-4)


def test_volume_of_known_simplexes():
    s = 2.5
    for n in range(2, 6):   # regular simplex with side s: s^k / k! * sqrt((k + 1) / 2^k), k = n - 1
        points = torch.eye(n, dtype=torch.float64) * s / math.sqrt(2)
        k = n - 1
        assert simplex_volume(points) == pytest.approx(s ** k / math.factorial(k) * math.sqrt((k + 1) / 2 ** k),
                                                       rel=1e-9)
    assert float(squared_volume(torch.ones(1, 5))) == 0.0
    line = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert float(squared_volume(line)) == pytest.approx(25.0)   # Benton's V is the squared volume
    flat = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
    assert simplex_volume(flat) == pytest.approx(0.0, abs=1e-7)


def _complex(dim=50, n=4, simplexes=([0, 1, 2, 3],), free=None, lmbda=0.0):
    g = torch.Generator().manual_seed(0)
    space = SimpleNamespace(dim=dim, unflatten=lambda v: {"w": v})
    vertices = [torch.randn(dim, generator=g) for _ in range(n)]
    path = SimplicialComplexPath(space, vertices, free or [False] * n, [list(s) for s in simplexes], lmbda=lmbda)
    return path, torch.stack(vertices)


def test_dirichlet_samples_lie_in_the_simplex_and_are_flat():
    alpha = flat_dirichlet(40_000, 3, torch.Generator().manual_seed(1))
    assert (alpha >= 0).all() and torch.allclose(alpha.sum(1), torch.ones(40_000))
    assert torch.allclose(alpha.mean(0), torch.full((3,), 1 / 3), atol=0.01)
    # Dirichlet(1, 1, 1): each coordinate is Beta(1, 2), P(alpha_0 < 1/2) = 3/4
    assert (alpha[:, 0] < 0.5).float().mean().item() == pytest.approx(0.75, abs=0.01)

    path, vertices = _complex()
    coords = path.sample_coords(200, torch.Generator().manual_seed(2))
    for c in coords:
        point = path.vector(c)
        assert torch.allclose(point, c @ vertices, atol=1e-5)
        # barycentric coordinates recovered from the point by least squares are the sampled ones, all >= 0
        system = torch.cat([vertices.T, torch.ones(1, 4)]).double()
        solved = torch.linalg.lstsq(system, torch.cat([point, torch.ones(1)]).double()[:, None]).solution[:, 0]
        assert (solved > -1e-4).all() and torch.allclose(solved.float(), c, atol=1e-4)


def test_vertices_and_centroid_are_where_they_should_be():
    path, vertices = _complex()
    for i in range(4):
        assert torch.equal(path.vector(path.vertex_coords(i)), vertices[i])
    assert torch.allclose(path.vector(path.centroid_coords(0)), vertices.mean(0), atol=1e-6)
    assert path.grid().shape == (5, 4)


def test_complex_samples_stay_inside_one_simplex_and_visit_all():
    simplexes = ([0, 3, 4], [1, 3, 4], [2, 3, 4])
    path, _ = _complex(n=5, simplexes=simplexes)
    coords = path.sample_coords(600, torch.Generator().manual_seed(3))
    hits = [0, 0, 0]
    for c in coords:
        support = set(torch.nonzero(c).flatten().tolist())
        owners = [i for i, s in enumerate(simplexes) if support <= set(s)]
        assert owners, f"sample supported on {support}, in no simplex"
        hits[owners[0]] += 1
    assert min(hits) > 150


def test_grown_vertex_starts_at_the_centroid_and_the_volume_term_pushes_it_out():
    _, vertices = _complex(n=3, simplexes=([0, 1, 2],))
    space = SimpleNamespace(dim=50, unflatten=lambda v: {"w": v})
    path = SimplicialComplexPath.grown(space, list(vertices), [[0, 1, 2]], join=[0], lmbda=1.0)
    assert path.simplexes == [[0, 1, 2, 3]] and path.free.shape == (1, 50)
    assert torch.allclose(path.free[0], vertices.mean(0))
    assert torch.equal(path.control_points()[:3], vertices)
    with torch.no_grad():
        path.free.add_(0.01 * torch.randn(1, 50, generator=torch.Generator().manual_seed(0)))
    before = path.volumes()[0]
    path.penalty().backward()
    with torch.no_grad():
        path.free.sub_(1e-3 * path.free.grad)
    assert path.volumes()[0] > before
    assert _complex()[0].penalty() == 0.0      # lmbda = 0: no term at all


@pytest.fixture
def spro_ctx(tmp_path):
    """What `grow` reads of a run: config, data, template model, space, tracker, output dir."""
    cfg = compose_config("method=simplex", "trainer=smoke", "logger=none", f"output_dir={tmp_path}",
                         "method.epochs_per_vertex=1", "method.n_sample=2", "method.lmbda=1.0")
    data = random_dataset()
    model = build_model(cfg.arch.name, cfg.arch.params, data.input_shape, data.num_classes)
    return SimpleNamespace(cfg=cfg, data=data, model=model, space=ParameterSpace(model), device=torch.device("cpu"),
                           tracker=make_tracker(cfg, tmp_path), out_dir=tmp_path)


def test_spro_trains_only_the_newest_vertex_and_resumes(spro_ctx, tmp_path):
    torch.manual_seed(0)
    base = spro_ctx.space.flatten(dict(spro_ctx.model.named_parameters()))
    path1, history1 = grow(spro_ctx, [base], [[0]], join=[0], count=1, work_dir=tmp_path / "a")
    first = path1.control_points()
    path2, history2 = grow(spro_ctx, list(first), path1.simplexes, join=[0], count=1, work_dir=tmp_path / "b")
    second = path2.control_points()
    assert torch.equal(second[0], base) and torch.equal(second[1], first[1])      # old vertices untouched
    assert not torch.allclose(second[2], first.mean(0))                           # the new one trained
    assert history2[0]["volume"][0] > 0 and history1[0]["lmbda"] > 0
    # Started again over the same checkpoint directories, growth replays to the same simplex.
    again, _ = grow(spro_ctx, [base], [[0]], join=[0], count=1, work_dir=tmp_path / "a")
    assert torch.equal(again.control_points(), first)


def test_volume_weight_is_lambda_over_the_log_volume_of_random_networks(spro_ctx):
    state = torch.get_rng_state()
    weight = volume_weight(spro_ctx, 3, 0.5)
    assert torch.equal(torch.get_rng_state(), state)           # the run's own random stream is untouched
    points = []
    for i in range(3):
        torch.manual_seed(RANDOM_SIMPLEX_SEED + i)
        net = build_model(spro_ctx.cfg.arch.name, spro_ctx.cfg.arch.params, (1, 40), 10)
        points.append(torch.cat([p.detach().reshape(-1) for p in net.parameters()]).double().numpy())
    expected = 0.5 / math.log(qr_volume(np.stack(points)) ** 2 + VOLUME_EPS)
    assert weight == pytest.approx(expected, rel=1e-5)
    assert volume_weight(spro_ctx, 3, 0.0) == 0.0



def test_espro_run_records_the_simplex_and_the_ensembles(run_config, shared_store):
    results = run(run_config("dataset=digits", "method=simplex", "method.components=2", "method.samples=3",
                             "method.epochs_per_vertex=1", "method.n_sample=1", "method.plane=true",
                             "method.plane_grid=4",
                             store=shared_store))
    assert validate(results) == []
    s, e = results["simplex"], results["ensemble"]
    assert s["vertices"] == 3 and len(s["vertex_test_err"]) == 3 and len(s["per_component"]) == 2
    assert s["vertex_test_err"][0] == results["endpoints"][0]["test_err"]       # vertex 0 is the trained net
    assert s["volume"] > 0 and [g["vertex"] for g in s["per_component"][0]["growth"]] == [1, 2]
    assert e["members"] == 2 and [c["members"] for c in e["curve"]] == [1, 2]
    assert e["baseline"]["members"] == 2 and e["baseline"]["budget_epochs"] == 2 * 2
    # each component: 2 base epochs + 2 new vertices x 1 epoch x 1 sample per step
    assert e["budget_epochs"] == 2 * (2 + 2 * 1 * 1)
    assert e["baseline_equal_cost"]["members"] == 4 and len(results["endpoints"]) == 4
    out = Path(results["config"]["output_dir"])
    for name in ("ensemble.png", "simplex_slice_train_loss.png", "simplex_slice.npz"):
        assert (out / name).exists()
    assert read_results(out)["status"] == "ok"


@pytest.mark.parametrize("arch", [["arch=mlp"], ["arch=convnet", "arch.params.channels=[4,8]", "arch.params.hidden=16",
                                                "arch.params.batchnorm=true"]], ids=["mlp", "convnet-bn"])
def test_complex_run_connects_the_modes_through_its_connectors(run_config, shared_store, arch):
    results = run(run_config("dataset=digits", *arch, "method=complex", "method.connectors=2", "method.samples=2",
                             "method.epochs_per_vertex=1", "method.points=5", store=shared_store))
    assert validate(results) == []
    c = results["complex"]
    assert c["simplexes"] == [[0, 2, 3], [1, 2, 3]] and len(c["volume"]) == 2
    assert c["growth"][0]["lmbda"] == 0.0 and c["growth"][1]["lmbda"] > 0   # as Benton's complex_iterative
    assert len(c["connector_test_err"]) == 2 and len(c["centroid_test_err"]) == 2
    profile = results["path"]
    for end, i in ((0, 0), (-1, 1)):
        assert profile["test_err"][end] == pytest.approx(results["endpoints"][i]["test_err"])
