"""Loss planes: the basis, the grid, the per-node measurements and the saved files."""
import numpy as np
import pytest
import torch
from conftest import random_dataset

from modeconn.evaluation.metrics import evaluate_point
from modeconn.evaluation.plane import evaluate_plane, plane_grid, plane_through, save_plane
from modeconn.models import build_model
from modeconn.paths import ParameterSpace

EVAL = {"wd": 1e-4, "batch_size": 64, "bn_batch_size": 64}


def _model_and_weights():
    model = build_model("mlp", {"width": 16, "depth": 1}, (1, 40), 10)
    space = ParameterSpace(model)
    g = torch.Generator().manual_seed(1)
    w1, w2, w3 = (0.3 * torch.randn(space.dim, generator=g) for _ in range(3))
    return model, space, w1, w2, w3


def test_basis_is_orthonormal_and_anchors_round_trip():
    _, _, w1, w2, w3 = _model_and_weights()
    plane = plane_through(w1, w2, w3)
    gram = torch.stack([plane.u, plane.v]) @ torch.stack([plane.u, plane.v]).T
    assert torch.allclose(gram, torch.eye(2, dtype=gram.dtype), atol=1e-10)
    for w in (w1, w2, w3):
        assert torch.allclose(plane.point(*plane.coords(w)), w, atol=1e-5)
        assert plane.distance(w) < 1e-5
    # Garipov's layout: w1 at the origin, w2 on the x axis, w3 above it.
    assert np.allclose(plane.coords(w1), (0.0, 0.0), atol=1e-6)
    assert abs(plane.coords(w2)[1]) < 1e-6 and plane.coords(w2)[0] > 0 and plane.coords(w3)[1] > 0
    # an off-plane vector is reported at its true distance
    off = torch.randn(w1.shape[0], dtype=torch.float64)
    off -= (off @ plane.u) * plane.u + (off @ plane.v) * plane.v
    off = off / off.norm() * 2.0
    assert abs(plane.distance((w1.double() + off).float()) - 2.0) < 1e-5


def test_grid_covers_the_anchors_with_the_margin():
    xy = np.array([[0.0, 0.0], [10.0, 0.0], [4.0, 3.0]])
    xs, ys = plane_grid(None, xy, grid=21, margin=0.2)
    assert xs.shape == ys.shape == (21,)
    assert np.isclose(xs[0], -2.0) and np.isclose(xs[-1], 12.0)
    assert np.isclose(ys[0], -0.6) and np.isclose(ys[-1], 3.6)
    # with G = 8 and margin 0.2, nodes land on the anchors' range ends (Garipov's alphas)
    xs8, _ = plane_grid(None, xy, grid=8, margin=0.2)
    assert np.allclose(xs8, np.linspace(-0.2, 1.2, 8) * 10.0)


def test_evaluate_plane_matches_evaluate_point_at_the_anchors(tmp_path):
    model, space, w1, w2, _ = _model_and_weights()
    data = random_dataset(200, 80)
    # bend above the midpoint of w1-w2: with margin 0 and grid 3 all three anchors are nodes
    r = torch.randn(space.dim, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    d = (w2 - w1).double()
    r -= (r @ d) / (d @ d) * d
    w3 = (w1.double() + 0.5 * d + 0.5 * r).float()
    plane = plane_through(w1, w2, w3)
    anchors = [w1, w2, w3]
    curve = [((1 - t) ** 2 * w1 + 2 * t * (1 - t) * (2 * w3 - 0.5 * (w1 + w2)) + t ** 2 * w2)
             for t in np.linspace(0, 1, 5)]
    result = evaluate_plane(model, space, plane, random_dataset(200, 80), grid=3, margin=0.0, anchors=anchors,
                            curve=curve, progress=False, **EVAL)
    for key in ("train_loss", "train_nll", "train_err", "test_nll", "test_err"):
        assert result[key].shape == (3, 3)
    assert result["anchors_xy"].shape == (3, 2) and result["curve_xy"].shape == (5, 2)
    assert np.allclose(result["curve_dist"], 0.0, atol=1e-4)  # a Bezier curve lies in its control plane
    for w, (i, j) in zip(anchors, [(0, 0), (2, 0), (1, 2)]):
        assert np.isclose(result["xs"][i], plane.coords(w)[0], atol=1e-6)
        assert np.isclose(result["ys"][j], plane.coords(w)[1], atol=1e-6)
        expected = evaluate_point(model, space.unflatten(w), data, **EVAL).as_dict()
        for key, value in expected.items():
            assert result[key][i, j] == pytest.approx(value, abs=1e-4), key

    files = save_plane(result, tmp_path / "planes", name="bend")
    assert [f.name for f in files] == ["bend.npz", "bend_train_loss.png", "bend_test_err.png"]
    assert all(f.stat().st_size > 0 for f in files)
    with np.load(files[0]) as saved:
        assert np.array_equal(saved["test_err"], result["test_err"])
        assert set(saved.files) >= {"xs", "ys", "anchors_xy", "curve_xy", "curve_dist", "train_loss"}
