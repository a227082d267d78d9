"""Architectures: shapes, gradients, fx-traceability, configs and reference parameter counts."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import fx, nn
from torch.func import functional_call

from modeconn.models import ARCHITECTURES, build_model, default_params

CONF = Path(__file__).resolve().parents[1] / "conf" / "arch"

# The transformers (issue 17) take their own input kinds; tests/test_transformers.py covers them.
TRANSFORMERS = ("vit", "gpt2")
CLASSIC = [n for n in ARCHITECTURES if n not in TRANSFORMERS]

SHAPES = {"mnist1d": (1, 40), "digits": (1, 8, 8), "fashion": (1, 28, 28), "cifar10": (3, 32, 32)}

# Cut-down versions of the big nets for the per-shape matrix (full size is checked below).
SMALL = {
    "wrn28x10": {"depth": 10, "widen": 2},
    "preresnet164": {"depth": 11},
    "preresnet110": {"depth": 20},
}

# Parameter counts at CIFAR-10 size; the Garipov-derived ones equal the reference repos'.
CIFAR_PARAMS = {
    "mlp": 1_841_162,
    "convnet": 545_098,
    "vgg16": 15_245_130,
    "vgg16bn": 15_253_578,
    "preresnet110": 1_730_522,
    "preresnet164": 1_703_258,
    "wrn28x10": 36_489_290,
    "resnet20": 272_474,
    "tinyten": 86_778,
}


def _build(name, shape, params=None, classes=10, seed=0):
    torch.manual_seed(seed)
    return build_model(name, params if params is not None else SMALL.get(name, {}), shape, classes)


def _check_forward_backward_trace(model, shape, classes):
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(1))
    model.train()
    out = model(x)
    assert out.shape == (2, classes)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no grad for {name}"
        assert torch.isfinite(p.grad).all(), f"non-finite grad for {name}"
    model.eval()
    traced = fx.symbolic_trace(model)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("shape_name", list(SHAPES))
@pytest.mark.parametrize("name", CLASSIC)
def test_forward_backward_trace(name, shape_name):
    shape = SHAPES[shape_name]
    _check_forward_backward_trace(_build(name, shape), shape, 10)


@pytest.mark.parametrize("name", ["wrn28x10", "preresnet164"])
def test_full_size_forward(name):
    model = _build(name, SHAPES["cifar10"], params={}).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SMALL))
def test_full_size_forward_backward_trace(name):
    _check_forward_backward_trace(_build(name, SHAPES["cifar10"], params={}), SHAPES["cifar10"], 10)


@pytest.mark.parametrize("name", CLASSIC)
def test_cifar_parameter_counts(name):
    model = _build(name, SHAPES["cifar10"], params={})
    assert sum(p.numel() for p in model.parameters()) == CIFAR_PARAMS[name]


@pytest.mark.parametrize("name", [n for n in CLASSIC if n != "mlp"])
def test_conv_layers_match_input_dimensionality(name):
    for shape, ndim in [((1, 40), 1), ((3, 32, 32), 2)]:
        kinds = {type(m) for m in _build(name, shape).modules()}
        wrong = {nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d} if ndim == 1 else {nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d}
        assert (nn.Conv1d if ndim == 1 else nn.Conv2d) in kinds
        assert not kinds & wrong


def test_pools_stop_at_spatial_size_one():
    pools = lambda m: sum(isinstance(x, (nn.MaxPool1d, nn.MaxPool2d)) for x in m.modules())
    assert pools(_build("vgg16", (3, 32, 32))) == 5
    assert pools(_build("vgg16", (1, 8, 8))) == 3
    assert pools(_build("convnet", (1, 2, 2), {"channels": [4, 4, 4]})) == 1


@pytest.mark.parametrize("name", CLASSIC)
def test_deterministic_given_seed(name):
    a, b = _build(name, (1, 40), seed=3), _build(name, (1, 40), seed=3)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    c = _build(name, (1, 40), seed=4)
    assert any(not torch.equal(va, vc) for va, vc in zip(a.state_dict().values(), c.state_dict().values()))


def test_functional_call_swaps_weights():
    a, b = _build("resnet20", (3, 32, 32), seed=0).eval(), _build("resnet20", (3, 32, 32), seed=1).eval()
    x = torch.randn(2, 3, 32, 32)
    state = {**dict(b.named_parameters()), **dict(b.named_buffers())}
    with torch.no_grad():
        torch.testing.assert_close(functional_call(a, state, (x,)), b(x))


def test_unknown_name_lists_choices():
    with pytest.raises(ValueError, match="resnet20"):
        build_model("resnet18", {}, (3, 32, 32), 10)


@pytest.mark.parametrize("shape", [(3, 32, 32, 32), (32,), (0, 8, 8), ()])
def test_bad_input_shape(shape):
    with pytest.raises(ValueError, match=r"\(C, L\)"):
        build_model("convnet", {}, shape, 10)


def test_unknown_param_lists_choices():
    with pytest.raises(ValueError, match="widen"):
        build_model("wrn28x10", {"width": 2}, (3, 32, 32), 10)


def test_mlp_hidden_layers_enumerable():
    m = build_model("mlp", {"width": 7, "depth": 3, "batchnorm": True, "dropout": 0.1}, (1, 40), 5)
    assert [lin.weight.shape for lin in m.hidden_linears()] == [(7, 40), (7, 7), (7, 7)]
    assert [type(x) for x in m.features[0]] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout]
    assert m.classifier.weight.shape == (5, 7)


def test_convnet_kuditipudi_variant():
    m = build_model("convnet", {"channels": [32, 32, 32], "bias": False, "hidden": 0}, (1, 28, 28), 10)
    assert all(p.dim() > 1 for p in m.parameters())  # no biases
    assert m.classifier.in_features == 32 * 3 * 3


def test_vgg11_via_depth_param():
    m = build_model("vgg16", {"depth": 11}, (3, 32, 32), 10)
    assert sum(isinstance(x, nn.Conv2d) for x in m.modules()) == 8


def test_tinyten_follows_reference_layout():
    m = build_model("tinyten", {}, (3, 32, 32), 10)
    convs = [x for x in m.modules() if isinstance(x, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs] == [
        (16, 3, 1, 1), (16, 3, 1, 1), (32, 3, 2, 1), (32, 3, 1, 1), (32, 3, 1, 1), (64, 3, 2, 1),
        (64, 3, 1, 0), (64, 1, 1, 0)]
    small = build_model("tinyten", {}, (1, 8, 8), 10)  # 2x2 left before the 3x3: padded
    assert [x for x in small.modules() if isinstance(x, nn.Conv2d)][6].padding[0] == 1


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


def test_arch_configs_cover_registry():
    """Every zoo config names a registered builder; library configs (torchvision, timm, custom)
    name a library instead (tests/test_library_models.py)."""
    zoo = [p.stem for p in CONF.glob("*.yaml") if "library" not in OmegaConf.load(p)]
    assert sorted(zoo) == sorted(ARCHITECTURES)


@pytest.mark.parametrize("name", CLASSIC)
def test_arch_config_loads_and_builds(name):
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    assert cfg.name == name
    assert isinstance(cfg.lr, float) and isinstance(cfg.wd, float)
    assert OmegaConf.to_container(cfg.params) == {k: _plain(v) for k, v in default_params(name).items()}
    torch.manual_seed(0)
    model = build_model(cfg.name, cfg.params, (1, 40), 10)
    assert model(torch.randn(2, 1, 40)).shape == (2, 10)
