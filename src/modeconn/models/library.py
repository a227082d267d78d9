"""Networks from outside the zoo: torchvision's and timm's classifiers, and any class by path.

``arch=torchvision arch.name=resnet18``, ``arch=timm arch.name=resnet18`` and
``arch=custom arch._target_=my_pkg.nets.Net`` (Hydra's instantiate convention, keyword
arguments in ``arch.params``). Every one is randomly initialised (the run's seed decides
how) unless ``endpoint.checkpoints`` gives its weights; library models are never
downloaded. The class count and input channels follow the dataset where the library lets
them: torchvision's ``num_classes`` and a rebuilt first convolution for other than 3
channels, timm's ``num_classes`` and ``in_chans``; a custom class gets ``num_classes``,
``input_shape`` and ``in_channels`` when its signature asks for them and the config does
not set them.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

from torch import nn


def torchvision_model(input_shape: tuple[int, ...], num_classes: int, name: str, params: Mapping) -> nn.Module:
    """torchvision.models ``name`` (no weights), ``num_classes`` outputs, first conv for C channels."""
    import torchvision

    if name not in torchvision.models.list_models():
        raise ValueError(f"torchvision has no model {name!r}; see torchvision.models.list_models()")
    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **dict(params))
    return _adapt_channels(model, input_shape[0], name)


def timm_model(input_shape: tuple[int, ...], num_classes: int, name: str, params: Mapping) -> nn.Module:
    """timm ``name`` (pretrained=False), ``num_classes`` outputs and ``in_chans`` = C."""
    try:
        import timm
    except ImportError as e:  # pragma: no cover - timm is a dependency
        raise ValueError("arch=timm needs the timm package (pip install timm)") from e
    if not timm.is_model(name):
        raise ValueError(f"timm has no model {name!r}; see timm.list_models()")
    kwargs = {"num_classes": num_classes, "in_chans": input_shape[0], **dict(params)}
    return timm.create_model(name, pretrained=False, **kwargs)


def custom_model(input_shape: tuple[int, ...], num_classes: int, target: str, params: Mapping) -> nn.Module:
    """``target`` (a dotted path to a class or function) instantiated by Hydra with ``params``."""
    from hydra.utils import get_object, instantiate

    if not target:
        raise ValueError("arch=custom needs arch._target_=<module.Class>")
    try:
        factory = get_object(target)
    except Exception as e:
        raise ValueError(f"arch._target_={target}: cannot be imported ({str(e).splitlines()[0]})") from e
    kwargs = {**_offered(factory, input_shape, num_classes), **dict(params)}
    try:
        model = instantiate({"_target_": target, **kwargs}, _convert_="all")
    except Exception as e:  # Hydra wraps the class's own error (an unknown keyword, a bad value)
        cause = e.__cause__ or e
        raise ValueError(f"arch._target_={target}: {str(cause).strip().splitlines()[0]}") from e
    if not isinstance(model, nn.Module):
        raise ValueError(f"arch._target_={target} returned {type(model).__name__}, not an nn.Module")
    return model


def _offered(factory: Callable, input_shape: tuple[int, ...], num_classes: int) -> dict:
    """What the run knows about its data, for the parameters the class names."""
    try:
        names = set(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        return {}
    known = {"num_classes": num_classes, "input_shape": tuple(input_shape), "in_channels": input_shape[0],
             "in_chans": input_shape[0]}
    return {k: v for k, v in known.items() if k in names}


def _adapt_channels(model: nn.Module, channels: int, name: str) -> nn.Module:
    """Rebuild the first convolution for ``channels`` inputs (torchvision's are made for 3)."""
    if channels == 3:
        return model
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                if child.in_channels != 3:
                    return model
                setattr(parent, child_name, nn.Conv2d(
                    channels, child.out_channels, child.kernel_size, child.stride, child.padding, child.dilation,
                    child.groups if child.groups == 1 else channels, child.bias is not None, child.padding_mode))
                return model
    raise ValueError(f"torchvision {name}: no first convolution to adapt to {channels} input channels")


# arch.library -> builder(input_shape, num_classes, name-or-target, params)
LIBRARIES: dict[str, Callable[..., nn.Module]] = {
    "torchvision": torchvision_model,
    "timm": timm_model,
    "custom": custom_model,
}


def build_library_model(arch: Mapping, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The network an ``arch`` node with a ``library`` key describes (conf/arch/{torchvision,timm,custom}.yaml)."""
    library = arch["library"]
    if library not in LIBRARIES:
        raise ValueError(f"arch.library={library}: choose one of {sorted(LIBRARIES)}")
    which = arch.get("_target_") if library == "custom" else arch.get("name")
    return LIBRARIES[library](tuple(input_shape), int(num_classes), which, arch.get("params") or {})
