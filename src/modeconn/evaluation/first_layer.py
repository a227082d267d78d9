"""The first layer of a control-point path, computed once per path instead of once per point.

On a path w(t) = sum_k c_k(t) theta_k (linear, Bezier, PolyChain, simplexes) the
first layer's pre-activations are linear in its weights, and its input is the raw
data: x W(t)^T + b(t) = sum_k c_k (x W_k^T + b_k) exactly (the bias the same way).
So `FirstLayerCache` computes every control point's first-layer output Z_k on the
train and test inputs once, and at each grid point the evaluation feeds
z = sum_k c_k Z_k to the rest of the network with the first layer switched to the
identity. For the 784-512-512-10 MLP that removes 60% of the multiply-adds of
every point; the combination is 3 multiply-adds per output value. The train z is
formed once per point and read by both the BN pass and the train-error pass.

Where it applies: the first module with parameters that the forward calls must be
a Linear or a Conv{1,2,3}d applied once, to the input as given (a Flatten before it
is fine), and the network applied to Z_0 with it switched off must give the same
logits as on the inputs (checked on a few examples at set-up). Where it does not
fit: the cache holds (K + 1) x (train + test) x first-layer outputs (K control points
plus one combined z); above `budget` bytes (default `BUDGET`, 1 GiB) it is not built
and the plain evaluation runs. That rules out conv nets at image sizes: a 32-channel
3x3 conv on 28x28 inputs has 25,088 outputs per example, 21 GB for 3 points of
Fashion-MNIST, while the MLP's 512 need 0.43 GB.
"""
from __future__ import annotations

import contextlib
import math

import torch
from torch import nn
from torch.func import functional_call

#: Most bytes the cache may hold (control points' first-layer outputs plus one combined z).
BUDGET = 1 << 30
#: Examples per forward pass while building the cache.
CHUNK = 4096
_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _first_parametric_layer(model: nn.Module, x: torch.Tensor) -> tuple[str, nn.Module] | None:
    """(name, module) of the first leaf module with parameters that `model`'s forward calls."""
    calls: list[tuple[str, nn.Module]] = []
    hooks = [m.register_forward_pre_hook(lambda mod, inp, name=name: calls.append((name, mod)))
             for name, m in model.named_modules()
             if not list(m.children()) and any(True for _ in m.parameters(recurse=False))]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    if not calls:
        return None
    name, module = calls[0]
    if not isinstance(module, _LAYERS) or sum(m is module for _, m in calls) != 1:
        return None
    return name, module


@contextlib.contextmanager
def _switched_off(layer: nn.Module):
    """`layer` returns its input unchanged (an instance attribute, removed on exit)."""
    layer.forward = lambda inp: inp
    try:
        yield
    finally:
        del layer.forward


class FirstLayerCache:
    """Every control point's first-layer output on the train and test inputs; see the module doc.

    Build with `FirstLayerCache.build(path, model, data)`, which returns None where the
    precompute does not apply or would not fit."""

    def __init__(self, layer: nn.Module, names: list[str], train: torch.Tensor, test: torch.Tensor):
        self.layer, self.names = layer, names
        self.z_train, self.z_test = train, test  # (K, N, *out)
        self._out: tuple[torch.Tensor, torch.Tensor] | None = None

    @classmethod
    @torch.no_grad()
    def build(cls, path, model: nn.Module, data, *, budget: int | None = None) -> "FirstLayerCache | None":
        if not (hasattr(path, "coefficients") and hasattr(path, "control_points")):
            return None
        was_training = model.training
        model.eval()
        try:
            found = _first_parametric_layer(model, data.x_train[:2])
            if found is None:
                return None
            name, layer = found
            names = [f"{name}.{p}" for p, _ in layer.named_parameters(recurse=False)]
            space = path.space
            if any(n not in space.names for n in names):
                return None
            controls = path.control_points()
            k = controls.shape[0]
            out_shape = layer(data.x_train[:1].reshape(1, *_layer_input_shape(layer, data.x_train))).shape[1:]
            n = data.x_train.shape[0] + data.x_test.shape[0]
            need = (k + 1) * n * math.prod(out_shape) * controls.element_size()
            if need > (BUDGET if budget is None else budget):
                return None
            cache = cls(layer, names, *(cls._outputs(layer, space, names, controls, x, out_shape)
                                        for x in (data.x_train, data.x_test)))
            if not cache._agrees(model, space.unflatten(controls[0]), data.x_train[:8]):
                return None
            return cache
        finally:
            model.train(was_training)

    @staticmethod
    def _outputs(layer, space, names, controls: torch.Tensor, x: torch.Tensor, out_shape) -> torch.Tensor:
        """(K, N, *out): every control point's layer output, written chunk by chunk into one
        tensor (no concatenated and stacked copies of the ~0.4 GB)."""
        shape = _layer_input_shape(layer, x)
        out = controls.new_empty(controls.shape[0], x.shape[0], *out_shape)
        for k, control in enumerate(controls):
            params = space.unflatten(control)
            local = {n.rsplit(".", 1)[1]: params[n] for n in names}
            for s in range(0, x.shape[0], CHUNK):
                out[k, s:s + CHUNK] = functional_call(layer, local, (x[s:s + CHUNK].reshape(-1, *shape),))
        return out

    def _agrees(self, model, params, x) -> bool:
        """Whether feeding the cached outputs gives the model's own logits. A model that checks
        its input before the first layer (a ViT's image size, a GPT's token ids) refuses the fed
        tensor: that is a no, and the plain evaluation is used."""
        expected = functional_call(model, params, (x,))
        try:
            with self.feeding():
                got = functional_call(model, params, (self.z_train[0, :x.shape[0]],))
        except (AssertionError, RuntimeError, ValueError, TypeError, IndexError):
            return False
        return got.shape == expected.shape and torch.allclose(got, expected, rtol=1e-4, atol=1e-5)

    def combine(self, coefficients: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z = sum_k c_k Z_k on the train and the test inputs, written into the same two buffers
        at every point (valid until the next call): a fresh 140 MB a point (full Fashion-MNIST,
        width 512) cost its page faults every time."""
        c = coefficients.tolist()
        if self._out is None:
            self._out = (torch.empty_like(self.z_train[0]), torch.empty_like(self.z_test[0]))
        for z, acc in zip((self.z_train, self.z_test), self._out):
            torch.mul(z[0], c[0], out=acc)
            for ck, zk in zip(c[1:], z[1:]):
                acc.add_(zk, alpha=ck)
        return self._out

    def feeding(self):
        """While active, the network takes first-layer outputs z as its input."""
        return _switched_off(self.layer)


def _layer_input_shape(layer: nn.Module, x: torch.Tensor) -> tuple[int, ...]:
    """One example's shape as `layer` reads it: flat for a Linear, as stored for a conv."""
    return (layer.in_features,) if isinstance(layer, nn.Linear) else tuple(x.shape[1:])
