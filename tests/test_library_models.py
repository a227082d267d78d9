"""arch=torchvision / timm / custom: library classifiers and any class, adapted to the data."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import compose_config
from modeconn.align import UnsupportedGraph, permutation_spec
from modeconn.align.endpoint import align_endpoint
from modeconn.models import build_arch
from modeconn.store import spec_key
from modeconn.training.endpoints import endpoint_spec


class TinyNet(nn.Module):
    """A custom class that asks for what the run knows (num_classes, in_channels)."""

    def __init__(self, num_classes: int, in_channels: int, width: int = 8):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


def not_a_module(num_classes: int):
    return "nope"


def _arch(*overrides):
    return compose_config(*overrides).arch


def test_every_library_config_names_a_library():
    from omegaconf import OmegaConf

    from conftest import CONFIG_DIR
    from modeconn.models.library import LIBRARIES
    configs = {p.stem: OmegaConf.load(p) for p in (CONFIG_DIR / "arch").glob("*.yaml") if "library" in OmegaConf.load(p)}
    assert sorted(configs) == sorted(LIBRARIES) and all(c.library == name for name, c in configs.items())


def test_library_models_follow_the_data_shape_and_class_count():
    x = torch.randn(2, 1, 16, 16)
    tv = build_arch(_arch("arch=torchvision", "arch.name=resnet18"), (1, 16, 16), 7)
    assert tv.conv1.in_channels == 1 and tv(x).shape == (2, 7)
    tm = build_arch(_arch("arch=timm", "arch.name=resnet18"), (1, 16, 16), 7)
    assert tm(x).shape == (2, 7)
    custom = build_arch(_arch("arch=custom", f"arch._target_={__name__}.TinyNet", "+arch.params.width=5"),
                        (1, 16, 16), 7)
    assert isinstance(custom, TinyNet) and custom.conv.out_channels == 5 and custom(x).shape == (2, 7)


@pytest.mark.parametrize("overrides, says", [
    (("arch=torchvision", "arch.name=resnet_nope"), "torchvision has no model 'resnet_nope'"),
    (("arch=timm", "arch.name=timm_nope"), "timm has no model 'timm_nope'"),
    (("arch=custom",), "arch=custom needs arch._target_"),
    (("arch=custom", "arch._target_=no_such_pkg.Net"), "cannot be imported"),
    (("arch=custom", f"arch._target_={__name__}.not_a_module"), "not an nn.Module"),
    (("arch=custom", f"arch._target_={__name__}.TinyNet", "+arch.params.depth=3"), "unexpected keyword argument 'depth'"),
])
def test_a_model_that_cannot_be_built_says_why(overrides, says):
    with pytest.raises(ValueError, match=says):
        build_arch(_arch(*overrides), (3, 8, 8), 10)


def test_traced_alignment_permutes_library_models_without_changing_them():
    """torchvision's resnet18 (residual stream, BN, downsample) and a custom class trace like the
    zoo; weight matching of two initialisations leaves the logits unchanged."""
    for arch in (_arch("arch=torchvision", "arch.name=resnet18"),
                 _arch("arch=custom", f"arch._target_={__name__}.TinyNet")):
        nets = []
        for seed in (0, 1):
            torch.manual_seed(seed)
            nets.append(build_arch(arch, (3, 16, 16), 10).eval())
        spec = permutation_spec(nets[0], (3, 16, 16))
        x = torch.randn(8, 3, 16, 16)
        a, b = (n.state_dict() for n in nets)
        aligned, report = align_endpoint(nets[0], spec, a, b, method="weight", x_train=x, x_check=x)
        assert report["max_logit_change"] < 1e-4 and report["fraction_in_place"] < 0.5


def test_an_op_the_tracer_does_not_know_is_named_before_any_training(run_config, tmp_path):
    from modeconn.app import USER_ERRORS, run

    net = build_arch(_arch("arch=timm", "arch.name=convnext_atto"), (3, 32, 32), 10)
    with pytest.raises(UnsupportedGraph, match="permute"):
        permutation_spec(net, (3, 32, 32))
    assert issubclass(UnsupportedGraph, USER_ERRORS)      # one line on the command line, exit 2
    with pytest.raises(UnsupportedGraph, match="permute"):
        run(run_config("arch=custom", f"arch._target_={__name__}.Permuting", "dataset=digits", "align=weight"))
    assert not (tmp_path / "store" / "endpoints").exists()


class Permuting(nn.Module):
    """A custom class with an op the tracer does not follow (a channel permute)."""

    def __init__(self, num_classes: int, in_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.head = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.head(self.conv(x).permute(0, 2, 3, 1).mean((1, 2)))


def test_zoo_store_keys_are_unchanged_and_library_models_get_their_own():
    """Keys measured on main before this change: adding endpoint.checkpoints and library archs
    must not retrain anyone's stored endpoints."""
    assert spec_key(endpoint_spec(compose_config(), 1)) == "9319bb67d10677be72f7"
    assert spec_key(endpoint_spec(compose_config("dataset=digits", "arch=convnet"), 1)) == "f6b86809da75016d22e5"
    assert spec_key(endpoint_spec(compose_config("trainer=smoke"), 1)) == "30cce1471cff32db2a72"
    tv = endpoint_spec(compose_config("arch=torchvision", "arch.name=resnet18"), 0)
    tm = endpoint_spec(compose_config("arch=timm", "arch.name=resnet18"), 0)
    assert tv["arch"]["library"] == "torchvision" and spec_key(tv) != spec_key(tm)
    assert "checkpoints" not in tv["recipe"]
