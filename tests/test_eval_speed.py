"""The fast evaluation path (ghost-batch BN pass, large eval batches) agrees with a
plain point-by-point reference: functional_call, explicit BN reset, one train-mode
pass over batches of bn_batch_size weighted as Garipov's `update_bn` (momentum
b / (n + b)), then eval-mode passes."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from modeconn.data import Dataset
from modeconn.evaluation.bn import recompute_bn
from modeconn.evaluation.metrics import METRICS, evaluate_point
from modeconn.evaluation.profile import evaluate_path
from modeconn.models import build_model
from modeconn.paths import BezierPath, ParameterSpace

SHAPE = (1, 12, 12)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny nets: one thread, so a busy machine's thread contention cannot stall the test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _data(n_train=333, n_test=101, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + n_test, *SHAPE, generator=g)
    y = torch.randint(0, 10, (n_train + n_test,), generator=g)
    return Dataset("toy", x[:n_train], y[:n_train], x[n_train:], y[n_train:], 10, SHAPE, None)


MODELS = {
    "mlp_bn": ("mlp", {"width": 24, "depth": 2, "batchnorm": True}),
    "convnet_bn": ("convnet", {"channels": [4, 6], "batchnorm": True, "hidden": 16}),
    "mlp_plain": ("mlp", {"width": 24, "depth": 2}),
}


@torch.no_grad()
def garipov_update_bn(model, params, x, bn_batch_size, momentum=lambda n, b: b / (n + b)):
    """Garipov's utils.update_bn: reset, then plain train-mode BN passes with momentum
    b / (n + b) for a batch of b after n examples (dropout kept off, as ours)."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
    model.eval()
    for m in bns:
        m.train()
    seen = 0
    for start in range(0, x.shape[0], bn_batch_size):
        batch = x[start:start + bn_batch_size]
        for m in bns:
            m.momentum = momentum(seen, batch.shape[0])
        functional_call(model, params, (batch,))
        seen += batch.shape[0]
    for m in bns:
        m.momentum = 0.1
    model.eval()


@torch.no_grad()
def reference_point(model, params, data, wd, bn_batch_size):
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    garipov_update_bn(model, params, data.x_train, bn_batch_size)
    for m in bns:
        m.momentum = 0.1
    model.eval()
    out = {}
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        nll, wrong = 0.0, 0
        for start in range(0, x.shape[0], 64):  # plain small batches
            logits = functional_call(model, params, (x[start:start + 64],))
            nll += F.cross_entropy(logits, y[start:start + 64], reduction="sum").item()
            wrong += int((logits.argmax(1) != y[start:start + 64]).sum().item())
        out[f"{split}_nll"], out[f"{split}_err"] = nll / x.shape[0], 100.0 * wrong / x.shape[0]
    out["train_loss"] = out["train_nll"] + 0.5 * wd * sum(p.double().pow(2).sum().item() for p in params.values())
    return out


def _curve(name, points=4):
    arch, params = MODELS[name]
    torch.manual_seed(0)
    model = build_model(arch, params, SHAPE, 10)
    space = ParameterSpace(model)
    a = space.flatten(model.state_dict())
    b = a + 0.3 * torch.randn(space.dim, generator=torch.Generator().manual_seed(1))
    path = BezierPath(space, a, b, num_bends=3, points=points)
    with torch.no_grad():
        path.free.add_(0.3 * torch.randn(path.free.shape, generator=torch.Generator().manual_seed(2)))
    return model, space, path


def _close(a, b, key):
    if key.endswith("_err"):
        assert a == b, key
    else:
        assert abs(a - b) <= 1e-5, (key, a, b)


@pytest.mark.parametrize("name", list(MODELS))
def test_evaluate_path_matches_point_by_point_reference(name):
    model, space, path = _curve(name)
    data = _data()
    kw = dict(wd=5e-4, batch_size=1000, bn_batch_size=50)
    profile, _ = evaluate_path(path, model, data, progress=False, **kw)
    for i, coords in enumerate(path.grid()):
        params = {k: v.detach() for k, v in path.weights(coords).items()}
        ref = reference_point(model, params, data, kw["wd"], kw["bn_batch_size"])
        for key in METRICS:
            _close(profile[key][i], ref[key], key)


@pytest.mark.parametrize("name", ["mlp_bn", "convnet_bn"])
def test_numbers_do_not_depend_on_eval_batch_or_bn_chunk(name, monkeypatch):
    model, space, path = _curve(name, points=3)
    data = _data()
    base, _ = evaluate_path(path, model, data, progress=False, wd=1e-3, batch_size=10_000, bn_batch_size=32)
    for batch_size, chunk in ((7, 32), (64, 96), (333, 10_000)):
        monkeypatch.setattr("modeconn.evaluation.bn.BN_CHUNK", chunk)
        other, _ = evaluate_path(path, model, data, progress=False, wd=1e-3, batch_size=batch_size, bn_batch_size=32)
        for key in METRICS:
            for a, b in zip(base[key], other[key]):
                _close(a, b, key)


@pytest.mark.parametrize("name", ["mlp_bn", "convnet_bn"])
def test_ghost_bn_pass_equals_plain_train_mode_passes(name):
    model, space, path = _curve(name, points=3)
    data = _data()
    params = {k: v.detach() for k, v in path.weights(torch.tensor([0.4])).items()}
    reference_point(model, params, data, 0.0, 40)  # leaves the reference statistics in the BN layers
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    expected = [(m.running_mean.clone(), m.running_var.clone(), int(m.num_batches_tracked)) for m in bns]
    for chunk in (40, 120, 333, 5000):
        recompute_bn(model, params, data.x_train, 40, chunk=chunk)
        for m, (mean, var, count) in zip(bns, expected):
            assert torch.allclose(m.running_mean, mean, atol=1e-5, rtol=1e-5)
            assert torch.allclose(m.running_var, var, atol=1e-5, rtol=1e-5)
            assert int(m.num_batches_tracked) == count and m.momentum == 0.1
            assert "forward" not in m.__dict__
    assert not model.training


def test_evaluate_point_equals_reference_without_bn():
    arch, p = MODELS["mlp_plain"]
    model = build_model(arch, p, SHAPE, 10)
    data = _data()
    params = {k: v.detach() for k, v in model.named_parameters()}
    got = evaluate_point(model, params, data, wd=0.01, batch_size=100, bn_batch_size=50).as_dict()
    ref = reference_point(model, params, data, 0.01, 50)
    for key in METRICS:
        _close(got[key], ref[key], key)
    assert np.isfinite(got["train_loss"])


def test_bn_statistics_weight_a_short_last_batch_as_garipov():
    """10,000 examples in batches of 128 leave a last batch of 16: Garipov's update_bn
    weights it by 16/10,000, an equal-weight average (momentum None) by 1/79. Ours
    equals his, and the test can tell the two apart."""
    torch.manual_seed(0)
    model = build_model("mlp", {"width": 32, "depth": 2, "batchnorm": True}, SHAPE, 10)
    params = {k: v.detach() for k, v in model.named_parameters()}
    g = torch.Generator().manual_seed(3)
    x = torch.randn(10_000, *SHAPE, generator=g) * 2 + 0.5
    x[-16:] = 4.0 * x[-16:] + 3.0  # a distinct last batch, so its weight shows
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]

    def stats():
        return [(m.running_mean.clone(), m.running_var.clone()) for m in bns]

    garipov_update_bn(model, params, x, 128)
    expected = stats()
    garipov_update_bn(model, params, x, 128, momentum=lambda n, b: None)  # equal weights
    equal = stats()
    recompute_bn(model, params, x, 128)
    got = stats()
    for (mean, var), (emean, evar), (qmean, qvar) in zip(got, expected, equal):
        assert torch.allclose(mean, emean, atol=2e-6, rtol=1e-5)
        assert torch.allclose(var, evar, atol=2e-6, rtol=1e-5)
        # the equal-weight average is measurably elsewhere (>> the tolerance above)
        assert max((mean - qmean).abs().max(), ((var - qvar) / var).abs().max()) > 1e-3


class _ScaledInput(torch.nn.Module):
    """The first Linear does not read the raw input: the cache must not apply."""

    def __init__(self):
        super().__init__()
        self.linear, self.out = torch.nn.Linear(144, 16), torch.nn.Linear(16, 10)

    def forward(self, x):
        return self.out(torch.relu(self.linear(2.0 * x.flatten(1))))


@pytest.mark.parametrize("name", list(MODELS))
def test_first_layer_precompute_gives_the_plain_numbers(name):
    """sum_k c_k (x W_k^T + b_k) fed past the first layer = the network at w(t), at every point."""
    from modeconn.evaluation.first_layer import FirstLayerCache
    model, space, path = _curve(name, points=5)
    data = _data()
    assert FirstLayerCache.build(path, model, data) is not None
    kw = dict(wd=5e-4, batch_size=100, bn_batch_size=50, progress=False)
    fast, _ = evaluate_path(path, model, data, **kw)
    plain, _ = evaluate_path(path, model, data, precompute=False, **kw)
    for key in METRICS:
        for a, b in zip(fast[key], plain[key]):
            if key.endswith("_err"):
                assert a == b, key
            else:
                assert abs(a - b) <= 1e-5 * abs(b), (key, a, b)
    assert all("forward" not in m.__dict__ for m in model.modules())  # the first layer is switched back on


def test_first_layer_precompute_falls_back_where_it_does_not_apply_or_fit():
    from modeconn.evaluation.first_layer import FirstLayerCache
    data = _data()
    model = _ScaledInput()
    space = ParameterSpace(model)
    a = space.flatten(model.state_dict())
    path = BezierPath(space, a, a + 0.1, num_bends=3, points=3)
    assert FirstLayerCache.build(path, model, data) is None  # its first layer reads 2x, not x
    model, space, path = _curve("mlp_bn", points=3)
    # 4 x (333 + 101) examples x 24 outputs x 4 bytes = 166,656 bytes
    assert FirstLayerCache.build(path, model, data, budget=166_655) is None
    assert FirstLayerCache.build(path, model, data, budget=166_656) is not None


def test_last_bn_statistics_from_the_moments_of_its_linear_input():
    """The MLP's last BN layer takes its statistics from the moments of its Linear's input (the
    pass stops there); they equal the ones computed from that Linear's outputs, short last
    batch included. Conv nets, and a Linear whose forward is switched off (the first-layer
    precompute feeding), keep the plain pass."""
    from modeconn.evaluation.bn import _linear_feeding_last_bn
    from modeconn.evaluation.first_layer import _switched_off

    torch.manual_seed(0)
    model = build_model("mlp", {"width": 32, "depth": 3, "batchnorm": True}, SHAPE, 10).eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    x = torch.randn(1000, *SHAPE) * 2 + 0.5
    name, linear, bn = _linear_feeding_last_bn(model, params, x[:2])
    assert name == "features.2.linear" and linear is model.features[2].linear and bn is model.features[2].bn
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    recompute_bn(model, params, x, 128, moments=False)
    plain = [(m.running_mean.clone(), m.running_var.clone(), int(m.num_batches_tracked)) for m in bns]
    recompute_bn(model, params, x, 128)
    for m, (mean, var, count) in zip(bns, plain):
        assert torch.allclose(m.running_mean, mean, atol=2e-6, rtol=1e-5)
        assert torch.allclose(m.running_var, var, atol=2e-6, rtol=1e-5)
        assert int(m.num_batches_tracked) == count == 8 and "forward" not in m.__dict__
    assert "forward" not in linear.__dict__

    conv, _, _ = _curve("convnet_bn", points=3)
    conv_params = {k: v.detach() for k, v in conv.named_parameters()}
    assert _linear_feeding_last_bn(conv.eval(), conv_params, _data().x_train[:2]) is None
    shallow = build_model("mlp", {"width": 16, "depth": 1, "batchnorm": True}, SHAPE, 10).eval()
    with _switched_off(shallow.features[0].linear):
        z = torch.randn(2, 16)
        assert _linear_feeding_last_bn(shallow, dict(shallow.named_parameters()), z) is None
