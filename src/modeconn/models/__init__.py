"""Architectures by config name: ``build_model(cfg.arch.name, cfg.arch.params, shape, classes)``.

All models are plain ``nn.Module``s built from standard layers (weights can be
swapped in with ``torch.func.functional_call``), decide every shape-dependent
choice at construction (``torch.fx.symbolic_trace`` works), and accept 1-D
``(C, L)`` or 2-D ``(C, H, W)`` inputs (the MLP accepts any shape).
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from functools import partial

from torch import nn

from modeconn.models.convnet import convnet
from modeconn.models.gpt2 import gpt2
from modeconn.models.mlp import mlp
from modeconn.models.preresnet import preresnet
from modeconn.models.resnet import resnet
from modeconn.models.tinyten import tinyten
from modeconn.models.vgg import vgg
from modeconn.models.vit import vit
from modeconn.models.wideresnet import wideresnet

# name -> builder(input_shape, num_classes, **params); names are conf/arch/<name>.yaml.
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "mlp": mlp,
    "convnet": convnet,
    "vgg16": partial(vgg, depth=16, batchnorm=False),
    "vgg16bn": partial(vgg, depth=16, batchnorm=True),
    "preresnet110": partial(preresnet, depth=110, block="basic"),
    "preresnet164": partial(preresnet, depth=164, block="bottleneck"),
    "wrn28x10": partial(wideresnet, depth=28, widen=10),
    "resnet20": partial(resnet, depth=20),
    "tinyten": tinyten,
    "vit": vit,      # timm's VisionTransformer (models/vit.py)
    "gpt2": gpt2,    # Hugging Face's GPT2LMHeadModel on token ids (models/gpt2.py)
}


def default_params(name: str) -> dict:
    """The builder's keyword defaults for registry ``name`` (what conf/arch spells out)."""
    sig = inspect.signature(_builder(name))
    return {k: p.default for k, p in list(sig.parameters.items())[2:]}


def _builder(name: str) -> Callable[..., nn.Module]:
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def _plain(params: Mapping | None) -> dict:
    if params is None:
        return {}
    try:  # OmegaConf nodes -> plain dicts/lists, so builders see ordinary Python values
        from omegaconf import DictConfig, OmegaConf

        if isinstance(params, DictConfig):
            return OmegaConf.to_container(params, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return dict(params)


def build_model(name: str, params: Mapping | None, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """A freshly initialised ``name`` for inputs of ``input_shape`` (no batch dim).

    Raises ValueError for an unknown name, an unknown parameter or a bad input shape.
    """
    builder = _builder(name)
    kwargs = _plain(params)
    allowed = default_params(name)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(f"unknown params {unknown} for architecture {name!r}; choose from {sorted(allowed)}")
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return builder(tuple(input_shape), int(num_classes), **kwargs)


def build_arch(arch: Mapping, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The network an ``arch`` config node describes: a zoo model by ``name``, or, with a
    ``library`` key, a torchvision/timm/custom class (:mod:`modeconn.models.library`)."""
    node = _plain(arch)
    if node.get("library"):
        from modeconn.models.library import build_library_model
        return build_library_model(node, input_shape, num_classes)
    return build_model(node["name"], node.get("params"), input_shape, num_classes)


__all__ = ["ARCHITECTURES", "build_arch", "build_model", "default_params"]
