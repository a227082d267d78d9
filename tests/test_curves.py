"""Garipov's curves: the properties the paper relies on, and their training."""
import pytest
import torch

from modeconn.app import run
from modeconn.data import TensorLoader
from modeconn.models import build_model
from modeconn.paths import BezierPath, LinearPath, ParameterSpace, PolyChainPath, build_path
from modeconn.results import validate
from modeconn.training.fit import fit
from modeconn.training.path_trainer import PathModule

from test_training import Killed, KillAtEpoch

T = torch.linspace(0, 1, 101)


def _space(arch="mlp", params=None, shape=(1, 40)):
    model = build_model(arch, params or {"width": 16, "depth": 2}, shape, 10)
    space = ParameterSpace(model)
    g = torch.Generator().manual_seed(0)
    return model, space, torch.randn(space.dim, generator=g), torch.randn(space.dim, generator=g)


@pytest.mark.parametrize("kind", [BezierPath, PolyChainPath])
@pytest.mark.parametrize("bends", [3, 4, 5])
def test_coefficients_sum_to_one_and_ends_are_exact(kind, bends):
    _, space, a, b = _space()
    path = kind(space, a, b, num_bends=bends)
    for t in T:
        c = path.coefficients(t.reshape(1))
        assert torch.isclose(c.sum(), torch.tensor(1.0), atol=1e-6) and (c >= 0).all()
    with torch.no_grad():
        path.free.add_(torch.randn_like(path.free))  # a trained curve, not the initial one
    assert torch.equal(path.vector(torch.tensor([0.0])), a)
    assert torch.equal(path.vector(torch.tensor([1.0])), b)


def test_bezier_with_the_bend_at_the_midpoint_is_the_straight_line():
    _, space, a, b = _space()
    bezier, line = BezierPath(space, a, b, num_bends=3), LinearPath(space, a, b)
    assert torch.allclose(bezier.free[0], 0.5 * (a + b), atol=1e-6)
    for t in T:
        assert torch.allclose(bezier.vector(t.reshape(1)), line.vector(t.reshape(1)), atol=1e-5)


def test_polychain_passes_through_its_bend_at_one_half():
    _, space, a, b = _space()
    path = PolyChainPath(space, a, b, num_bends=3)
    with torch.no_grad():
        path.free.copy_(torch.randn_like(path.free))
    assert torch.equal(path.vector(torch.tensor([0.5])), path.free[0])


def test_curves_need_a_bend_and_only_the_bends_train():
    _, space, a, b = _space()
    with pytest.raises(ValueError, match="num_bends"):
        BezierPath(space, a, b, num_bends=2)
    path = build_path({"name": "bezier", "num_bends": 4}, space, [a, b])
    assert path.trainable and path.free.shape == (2, space.dim) and not path.fixed.requires_grad


def _toy_loader(shape, n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorLoader(torch.randn(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g), 16, seed=seed)


@pytest.mark.parametrize("arch,params,shape", [
    ("mlp", {"width": 16, "depth": 2, "batchnorm": True}, (1, 40)),
    ("convnet", {"channels": [4, 8], "hidden": 16, "batchnorm": True}, (1, 28, 28)),
    ("resnet20", {"width": 1}, (3, 32, 32)),
    ("vgg16bn", {"width": 0.125}, (3, 32, 32)),
])
def test_a_curve_trains_on_every_kind_of_net(arch, params, shape):
    torch.manual_seed(0)
    model = build_model(arch, params, shape, 10)
    space = ParameterSpace(model)
    a = space.flatten(model.state_dict())
    b = a + 0.05 * torch.randn(space.dim)
    path = BezierPath(space, a, b)
    loader = _toy_loader(shape)
    module = PathModule(path, model, loader, lr=0.05, momentum=0.9, wd=5e-4, total_steps=10)
    x, y = next(iter(loader))
    start = path.free.detach().clone()
    loss, _ = module.loss_at(torch.tensor([0.4]), x, y)
    loss.backward()
    assert path.free.grad is not None and path.free.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())  # the template network never trains
    opt = module.configure_optimizers()["optimizer"]
    opt.step()
    assert not torch.equal(path.free.detach(), start)
    assert torch.equal(path.vector(torch.tensor([0.0])), a)


def _train_curve(work_dir, callbacks=(), epochs=3):
    torch.manual_seed(0)
    model, space, a, b = _space(params={"width": 16, "depth": 2, "batchnorm": True})
    path = BezierPath(space, a, b)
    loader = _toy_loader((1, 40), n=96)
    module = PathModule(path, model, loader, lr=0.05, momentum=0.9, wd=5e-4, total_steps=len(loader) * epochs, seed=1)
    fit(module, epochs=epochs, work_dir=work_dir, trainer_cfg={"progress": False}, callbacks=list(callbacks),
        identity={"test": "resume"}, name="test training")
    return path.free.detach().clone()


def test_a_resumed_curve_training_equals_an_uninterrupted_one(tmp_path):
    uninterrupted = _train_curve(tmp_path / "a")
    with pytest.raises(Killed):
        _train_curve(tmp_path / "b", callbacks=[KillAtEpoch(2)])
    assert torch.equal(_train_curve(tmp_path / "b"), uninterrupted)


@pytest.mark.parametrize("method", ["bezier", "polychain"])
def test_curve_run_end_to_end(run_config, method):
    results = run(run_config("dataset=digits", f"method={method}"))
    assert validate(results) == [] and results["status"] == "ok"
    assert len(results["path"]["t"]) == 61 and "train_path" in results["timing"]
    for i, end in ((0, 0), (1, -1)):
        assert results["path"]["test_err"][end] == results["endpoints"][i]["test_err"]


def test_curve_run_draws_the_loss_plane(run_config, tmp_path):
    results = run(run_config("dataset=digits", "method=bezier", "method.plane=true", "method.plane_grid=5"))
    assert results["status"] == "ok" and results["plane"]["grid"] == 5
    # a 3-bend Bezier curve lies in the plane of its control points
    assert results["plane"]["max_curve_distance"] < 1e-3
    for name in results["plane"]["files"]:
        assert (tmp_path / "run" / name).stat().st_size > 0


@pytest.mark.parametrize("kind", ["bezier", "polychain"])
@pytest.mark.parametrize("bends, t", [(4, 0.37), (3, 0.37), (4, 1 / 3)])
def test_fused_training_weights_equal_the_vector_and_its_gradient(kind, bends, t):
    """weights_and_sq_norm (whole-vector operations, paths/base.py) = unflatten(vector) and
    dot(v, v), values and gradients to the free bends alike, also where the loss leaves a
    tensor out; one free bend (the folded gradient) or two; t on a PolyChain knot (one weight)."""
    torch.manual_seed(0)
    model = build_model("mlp", {"width": 8, "depth": 2, "batchnorm": True}, (1, 4, 4), 3)
    space = ParameterSpace(model)
    a = space.flatten(model.state_dict())
    path = {"bezier": BezierPath, "polychain": PolyChainPath}[kind](space, a, a + torch.randn(space.dim), num_bends=bends)
    with torch.no_grad():
        path.free.add_(torch.randn_like(path.free))
    t = torch.tensor([t])
    probe = {k: torch.randn_like(v) for k, v in space.unflatten(a).items()}
    probe.pop(space.names[1])  # the first bias: unused
    w, sq = path.weights_and_sq_norm(t)
    (sum((w[k] * probe[k]).sum() for k in probe) + 0.3 * sq).backward()
    fused = path.free.grad.clone()
    path.free.grad = None
    v = path.vector(t)
    ref = space.unflatten(v)
    (sum((ref[k] * probe[k]).sum() for k in probe) + 0.3 * torch.dot(v, v)).backward()
    assert all(torch.allclose(w[k], ref[k], atol=1e-6) for k in w)
    assert torch.allclose(sq, torch.dot(v, v).detach(), rtol=1e-6)
    assert torch.allclose(fused, path.free.grad, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("weights", [[0.2, 0.5, 0.3], [0.3, 0.3, 0.0], [0.0, 1.0, 0.0], [1.5, -0.7, 0.2], [0.0, 0.0, 0.0],
                                     [2.0, 0.0, 0.0]])
def test_the_step_combination_is_the_weighted_sum(weights):
    """paths/base.py's memory-lean combination (lerp chain, zero weights skipped, a final
    scaling when the weights do not sum to 1, plain adds with a negative weight) is sum_k c_k P_k,
    and a fresh tensor (never a control point itself); the accelerator's route gives the same."""
    from modeconn.paths.base import _mix_numbers, _mix_tensors

    points = [torch.randn(1000) for _ in weights]
    w = _mix_numbers(weights, points)
    assert torch.allclose(w, sum(c * p for c, p in zip(weights, points)), atol=1e-6)
    assert all(w.data_ptr() != p.data_ptr() for p in points)
    # the accelerator's route (matrix-vector products on tensor coefficients) agrees
    c = torch.tensor(weights)
    assert torch.allclose(_mix_tensors(c[:2], c[2:], torch.stack(points[:2]), torch.stack(points[2:])), w, atol=1e-6)
