"""Which axes of which tensors share one permutation: derived from the model's graph.

Hidden units can be reordered without changing the function: permuting the
output channels of a layer (its weight rows, bias, BN affine and running
statistics) together with the next layer's input columns. Residual additions tie
the channels of everything they add into one permutation, concatenations stack
several, and a flatten turns each channel into a block of consecutive features.

:func:`trace_spec` finds all of this by tracing the network with ``torch.fx`` and
propagating a channel *layout* (a list of segments, each a group, a unit count
and a block size) from the input to the logits. The input's and the logits'
channels are fixed; every other group is free. A model may instead provide its
own ``permutation_spec(input_shape)`` (a hand-written spec overrides the trace).
"""
from __future__ import annotations

import math
import operator
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.fx import GraphModule, Node, symbolic_trace
from torch.fx.passes.shape_prop import ShapeProp


class UnsupportedGraph(ValueError):
    """The tracer met an operation whose effect on channels it does not know."""


@dataclass(frozen=True)
class Axis:
    """Units ``[offset, offset + size)`` of dimension ``dim`` of state entry ``key``;
    each unit spans ``block`` consecutive entries (the H*W features of a flattened channel)."""

    key: str
    dim: int
    offset: int = 0
    block: int = 1


@dataclass(frozen=True)
class Probe:
    """Features of unit ``offset + i`` of a group are entry ``offset + i`` along dimension ``dim``
    of the output of ``name`` (a traced graph node, or a module when the spec says so); every
    other dimension (batch, positions, tokens) is a sample."""

    name: str
    dim: int = 1
    offset: int = 0


@dataclass
class PermutationGroup:
    name: str
    size: int
    axes: list[Axis] = field(default_factory=list)
    #: Where this group's units are seen, post-activation where possible: what activation
    #: matching correlates. A plain string is a graph node whose dim 1 is exactly this group.
    probes: list[str | Probe] = field(default_factory=list)
    #: For a group of attention heads (units = heads, each a block of ``block`` entries):
    #: ``heads[h]`` names the groups that permute entries inside head slot ``h`` (its q/k
    #: dims, its v dims). Slot ``j``'s entries are slot ``h``'s shifted by ``(j - h) * block``
    #: on every axis. Matchers treat the head and its within-head groups jointly.
    heads: list[list[str]] = field(default_factory=list)

    def probe_list(self) -> list[Probe]:
        return [p if isinstance(p, Probe) else Probe(p) for p in self.probes]


@dataclass
class PermutationSpec:
    groups: list[PermutationGroup]
    #: "nodes": probes name nodes of the fx-traced model; "modules": probes name submodules
    #: whose outputs are read with forward hooks (specs of models fx cannot trace).
    probes_on: str = "nodes"

    def __post_init__(self):
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            raise ValueError(f"permutation group names must be unique, got {names}")

    def group(self, name: str) -> PermutationGroup:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(name)

    def axes_by_key(self) -> dict[str, list[tuple[PermutationGroup, Axis]]]:
        out: dict[str, list] = defaultdict(list)
        for g in self.groups:
            for axis in g.axes:
                out[axis.key].append((g, axis))
        return dict(out)

    @property
    def units(self) -> int:
        return sum(g.size for g in self.groups)

    def check(self, state: dict[str, torch.Tensor]) -> None:
        """ValueError unless every axis fits its tensor in ``state``."""
        for g in self.groups:
            for a in g.axes:
                if a.key not in state:
                    raise ValueError(f"group {g.name!r}: state has no entry {a.key!r}")
                t = state[a.key]
                if a.dim >= t.dim() or a.offset + g.size * a.block > t.shape[a.dim]:
                    raise ValueError(f"group {g.name!r} (size {g.size}) does not fit {a.key} {tuple(t.shape)} "
                                     f"at dim {a.dim}, offset {a.offset}, block {a.block}")


# ---------------------------------------------------------------------------------------------
# Tracing

FIXED = 0  # the group id of channels that must not move (the input's and the logits')

_ELEMENTWISE_MODULES = (nn.ReLU, nn.LeakyReLU, nn.ReLU6, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid,
                        nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Identity,
                        nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d,
                        nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)
_POOL_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d,
                 nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)
_ACTIVATION_MODULES = (nn.ReLU, nn.LeakyReLU, nn.ReLU6, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid)
_ELEMENTWISE_FUNCTIONS = {torch.relu, torch.nn.functional.relu, torch.sigmoid, torch.tanh,
                          torch.nn.functional.gelu, torch.nn.functional.dropout, torch.nn.functional.max_pool1d,
                          torch.nn.functional.max_pool2d, torch.nn.functional.avg_pool1d,
                          torch.nn.functional.avg_pool2d, torch.nn.functional.adaptive_avg_pool1d,
                          torch.nn.functional.adaptive_avg_pool2d, torch.nn.functional.leaky_relu}
_ACTIVATION_FUNCTIONS = {torch.relu, torch.nn.functional.relu, torch.sigmoid, torch.tanh,
                         torch.nn.functional.gelu, torch.nn.functional.leaky_relu}
_POOL_FUNCTIONS = {torch.nn.functional.max_pool1d, torch.nn.functional.max_pool2d,
                   torch.nn.functional.avg_pool1d, torch.nn.functional.avg_pool2d,
                   torch.nn.functional.adaptive_avg_pool1d, torch.nn.functional.adaptive_avg_pool2d}
_ELEMENTWISE_METHODS = {"relu", "relu_", "sigmoid", "tanh", "contiguous", "clone"}
_ADD = {operator.add, operator.iadd, torch.add}


@dataclass(frozen=True)
class _Segment:
    group: int
    size: int
    block: int = 1


class _Tracer:
    """Propagates, for every node, its channel layout and which tensor dimension holds the
    channels (``self.cdim``): dim 1 for images and sequences (N, C, ...), the last dim after a
    Linear on tokens (N, T, F). Anything it cannot place is refused, naming the node."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...]):
        self.model = model
        self.parent: dict[int, int] = {FIXED: FIXED}
        self.size: dict[int, int] = {}
        self.axes: dict[int, list[Axis]] = defaultdict(list)
        self.producers: dict[int, list[str]] = defaultdict(list)
        self.probes: dict[int, list[tuple[str | Probe, bool]]] = defaultdict(list)  # (probe, is activation)
        self.layout: dict[Node, list[_Segment] | None] = {}
        self.cdim: dict[Node, int] = {}
        self.gm = self._traced(input_shape)

    def _traced(self, input_shape) -> GraphModule:
        try:
            gm = symbolic_trace(self.model)
        except Exception as error:  # noqa: BLE001 - torch.fx raises many kinds
            raise UnsupportedGraph(f"{type(self.model).__name__} cannot be traced by torch.fx ({error}); "
                                   "give the model a permutation_spec(input_shape) method instead") from error
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                ShapeProp(gm).propagate(torch.zeros(2, *input_shape))
        finally:
            self.model.train(was_training)
        return gm

    # union-find over group ids ------------------------------------------------------------
    def new_group(self, size: int, producer: str) -> int:
        gid = len(self.parent)
        self.parent[gid] = gid
        self.size[gid] = size
        self.producers[gid].append(producer)
        return gid

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: int, b: int, where: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if FIXED not in (ra, rb) and self.size[ra] != self.size[rb]:
            raise UnsupportedGraph(f"{where}: adds channels of different counts ({self.size[ra]} vs {self.size[rb]})")
        if rb == FIXED or (ra != FIXED and rb < ra):
            ra, rb = rb, ra
        self.parent[rb] = ra  # the older (or the fixed) id survives, so group names follow the first producer

    # layouts ---------------------------------------------------------------------------------
    @staticmethod
    def shape(node: Node) -> tuple[int, ...] | None:
        meta = node.meta.get("tensor_meta")
        return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None

    def _input(self, node: Node, arg) -> list[_Segment]:
        if not isinstance(arg, Node) or self.layout.get(arg) is None:
            raise UnsupportedGraph(f"node {node.name!r} ({node.op} {node.target}) reads a tensor the tracer "
                                   "could not follow")
        return self.layout[arg]

    def _dim(self, node: Node, arg: Node) -> int | None:
        """The channel dim of ``arg``; None when its channels are fixed (the input's), where any
        dim may play that part (a Linear on (N, T, F) inputs reads F)."""
        if all(seg.group == FIXED for seg in self.layout.get(arg) or []):
            return None
        return self.cdim.get(arg, 1)

    def _weight_axes(self, key: str, dim: int, layout: list[_Segment]) -> None:
        offset = 0
        for seg in layout:
            self.axes[seg.group].append(Axis(key, dim, offset, seg.block))
            offset += seg.size * seg.block

    def _flatten(self, node: Node, layout: list[_Segment]) -> list[_Segment]:
        """(N, C, ...) -> (N, C * ...) with the channels at dim 1: each channel a block."""
        source = node.args[0]
        in_shape, out_shape = self.shape(source), self.shape(node)
        if (in_shape is None or out_shape is None or len(out_shape) != 2 or out_shape[0] != in_shape[0]
                or self._dim(node, source) not in (None, 1)):
            raise UnsupportedGraph(f"node {node.name!r}: only flattening (N, C, ...) with channels at dim 1 to "
                                   f"(N, C*...) is supported (got {in_shape} -> {out_shape}, channels at dim "
                                   f"{self._dim(node, source)})")
        spatial = math.prod(in_shape[2:]) if len(in_shape) > 2 else 1
        self.cdim[node] = 1
        return [_Segment(s.group, s.size, s.block * spatial) for s in layout]

    def visit(self, node: Node) -> None:
        op = node.op
        if op == "placeholder":
            shape = self.shape(node)
            self.layout[node] = [_Segment(FIXED, shape[1] if len(shape) > 1 else 1)]
            self.cdim[node] = 1
        elif op == "output":
            outs = node.args[0] if isinstance(node.args[0], (tuple, list)) else [node.args[0]]
            for out in outs:
                for seg in self._input(node, out):
                    self.union(seg.group, FIXED, "output")
        elif op == "call_module":
            self.layout[node] = self._module(node, self.gm.get_submodule(node.target))
        elif op == "call_function":
            self.layout[node] = self._function(node)
        elif op == "call_method":
            self.layout[node] = self._method(node)
        else:
            raise UnsupportedGraph(f"node {node.name!r}: {op} is not supported")
        if self.layout.get(node) is not None and node not in self.cdim:
            first = next((a for a in node.args if isinstance(a, Node) and self.layout.get(a) is not None), None)
            self.cdim[node] = self.cdim.get(first, 1)   # elementwise ops keep their input's channel dim

    def _module(self, node: Node, m: nn.Module) -> list[_Segment]:
        name = str(node.target)
        source = node.args[0]
        layout = self._input(node, source)
        dim, ndim = self._dim(node, source), len(self.shape(source))
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            if getattr(m, "groups", 1) != 1:
                raise UnsupportedGraph(f"{name}: grouped convolutions are not supported")
            linear = isinstance(m, nn.Linear)
            if linear and dim not in (None, ndim - 1):
                # A Linear mixes the last dim; only when that dim holds the channels is it understood.
                raise UnsupportedGraph(f"{name}: a Linear over dim {ndim - 1} of a {ndim}-D tensor whose channels "
                                       f"are at dim {dim} (it would mix positions, not channels)")
            if not linear and (dim not in (None, 1) or any(s.block != 1 for s in layout)):
                raise UnsupportedGraph(f"{name}: a convolution of flattened features or of channels not at dim 1")
            out = m.out_features if linear else m.out_channels
            gid = self.new_group(out, name)
            self.axes[gid].append(Axis(f"{name}.weight", 0))
            if m.bias is not None:
                self.axes[gid].append(Axis(f"{name}.bias", 0))
            self._weight_axes(f"{name}.weight", 1, layout)
            self.cdim[node] = len(self.shape(node)) - 1 if linear else 1
            self.probes[gid].append((self._probe_ref(node), False))
            return [_Segment(gid, out)]
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            if dim not in (None, 1):
                raise UnsupportedGraph(f"{name}: BatchNorm of channels at dim {dim} (it normalises dim 1)")
            keys = [k for k in ("weight", "bias", "running_mean", "running_var") if getattr(m, k) is not None]
            for k in keys:
                self._weight_axes(f"{name}.{k}", 0, layout)
            self._probe(node, layout, False)
            return layout
        if isinstance(m, nn.LayerNorm):
            # LayerNorm over the channels (the last dim) commutes with permuting them.
            if len(m.normalized_shape) != 1 or dim not in (None, ndim - 1) or any(s.block != 1 for s in layout):
                raise UnsupportedGraph(f"{name}: a LayerNorm over anything but the channels (last dim)")
            for k in ("weight", "bias"):
                if getattr(m, k, None) is not None:
                    self._weight_axes(f"{name}.{k}", 0, layout)
            self.cdim[node] = dim
            self._probe(node, layout, False)
            return layout
        if isinstance(m, nn.Flatten):
            if ndim > 2 and not (m.start_dim == 1 and m.end_dim == -1):
                raise UnsupportedGraph(f"{name}: Flatten(start_dim={m.start_dim}, end_dim={m.end_dim})")
            return self._flatten(node, layout) if ndim > 2 else layout
        if isinstance(m, _ELEMENTWISE_MODULES):
            if isinstance(m, _POOL_MODULES) and dim not in (None, 1):
                raise UnsupportedGraph(f"{name}: pooling a tensor whose channels are at dim {dim}")
            self._probe(node, layout, isinstance(m, _ACTIVATION_MODULES))
            return layout
        raise UnsupportedGraph(f"{name}: layer {type(m).__name__} is not supported by the permutation tracer; "
                               "give the model a permutation_spec(input_shape) method")

    def _probe_ref(self, node: Node) -> str | Probe:
        dim = self.cdim.get(node, 1)
        return node.name if dim == 1 else Probe(node.name, dim)

    def _probe(self, node: Node, layout: list[_Segment], activation: bool) -> None:
        if len(layout) == 1 and layout[0].block == 1:
            if node not in self.cdim:
                first = next(a for a in node.args if isinstance(a, Node))
                self.cdim[node] = self.cdim.get(first, 1)
            self.probes[layout[0].group].append((self._probe_ref(node), activation))

    def _add(self, node: Node) -> list[_Segment]:
        """A residual sum: the channels of both summands become one permutation."""
        tensors = [a for a in node.args if isinstance(a, Node) and self.layout.get(a) is not None]
        if len(tensors) == 1:
            return self._input(node, tensors[0])
        if not tensors:
            return None
        a, b = (self._input(node, t) for t in tensors)
        dims = {self._dim(node, t) for t in tensors} - {None}   # a fixed summand fits any channel dim
        if [(s.size, s.block) for s in a] != [(s.size, s.block) for s in b] or len(dims) > 1:
            raise UnsupportedGraph(f"node {node.name!r}: adds tensors of different channel layouts")
        for sa, sb in zip(a, b):
            self.union(sa.group, sb.group, node.name)
        if dims:
            self.cdim[node] = dims.pop()
        return a

    def _mean(self, node: Node, dims) -> list[_Segment]:
        """A mean over non-channel dims keeps the channels (moved left by the dims reduced before them)."""
        source = node.args[0]
        layout = self._input(node, source)
        in_shape, ndim = self.shape(source), len(self.shape(source))
        dim = self._dim(node, source)
        if dim is None:       # fixed channels: nothing to keep apart
            return [_Segment(FIXED, self.shape(node)[1] if len(self.shape(node)) > 1 else 1)]
        if dims is None:
            raise UnsupportedGraph(f"node {node.name!r}: a mean over every dim (channels included)")
        dims = {int(d) % ndim for d in (dims if isinstance(dims, (tuple, list)) else [dims])}
        keepdim = node.kwargs.get("keepdim", node.args[2] if len(node.args) > 2 else False)
        if dim in dims or 0 in dims or any(s.block != 1 for s in layout):
            raise UnsupportedGraph(f"node {node.name!r}: a mean over dims {sorted(dims)} of a {in_shape} tensor "
                                   f"whose channels are at dim {dim} (only other, non-batch dims may be averaged)")
        self.cdim[node] = dim if keepdim else dim - sum(d < dim for d in dims)
        return layout

    def _function(self, node: Node) -> list[_Segment] | None:
        fn = node.target
        if fn in _ADD:
            return self._add(node)
        if fn is torch.cat:
            dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
            ndim = len(self.shape(node))
            channel = self._dim(node, node.args[0][0])
            if channel is not None and dim % ndim != channel:
                raise UnsupportedGraph(f"node {node.name!r}: concatenation along dim {dim} (only channels, "
                                       f"dim {channel})")
            return [seg for t in node.args[0] for seg in self._input(node, t)]
        if fn is torch.flatten:
            layout = self._input(node, node.args[0])
            return self._flatten(node, layout) if len(self.shape(node.args[0])) > 2 else layout
        if fn is torch.mean:
            dims = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
            return self._mean(node, dims)
        if fn in _ELEMENTWISE_FUNCTIONS:
            layout = self._input(node, node.args[0])
            if fn in _POOL_FUNCTIONS and self._dim(node, node.args[0]) not in (None, 1):
                raise UnsupportedGraph(f"node {node.name!r}: pooling a tensor whose channels are not at dim 1")
            self._probe(node, layout, fn in _ACTIVATION_FUNCTIONS)
            return layout
        if fn is getattr:
            return None
        if fn is operator.getitem and isinstance(node.args[0], Node) and self.layout.get(node.args[0]) is None:
            return None   # x.shape[0]: a size, not a tensor
        raise UnsupportedGraph(f"node {node.name!r}: function {getattr(fn, '__name__', fn)} is not supported by "
                               "the permutation tracer; give the model a permutation_spec(input_shape) method")

    def _method(self, node: Node) -> list[_Segment] | None:
        name = node.target
        if name in ("size", "dim"):
            return None
        layout = self._input(node, node.args[0])
        if name in _ELEMENTWISE_METHODS:
            if name.startswith("relu") or name in ("sigmoid", "tanh"):
                self._probe(node, layout, True)
            return layout
        if name == "add":
            return self._add(node)
        if name in ("view", "reshape", "flatten"):
            if self.shape(node) == self.shape(node.args[0]):
                return layout
            if name == "flatten":
                start = node.kwargs.get("start_dim", node.args[1] if len(node.args) > 1 else 0)
                if start != 1:
                    raise UnsupportedGraph(f"node {node.name!r}: .flatten({start}) (only from dim 1)")
            return self._flatten(node, layout)
        if name == "mean":
            dims = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
            return self._mean(node, dims)
        raise UnsupportedGraph(f"node {node.name!r}: method .{name}() is not supported by the permutation "
                               "tracer; give the model a permutation_spec(input_shape) method")

    # result ----------------------------------------------------------------------------------
    def spec(self) -> PermutationSpec:
        for node in self.gm.graph.nodes:
            self.visit(node)
        roots: dict[int, list[int]] = defaultdict(list)
        for gid in self.size:
            roots[self.find(gid)].append(gid)
        groups = []
        for root, members in sorted(roots.items()):
            if root == FIXED:
                continue
            producers = [p for gid in members for p in self.producers[gid]]
            name = producers[0] if len(producers) == 1 else f"{producers[0]}+{len(producers) - 1}"
            axes = _unique(a for gid in members for a in self.axes[gid])
            probes = [(n, act) for gid in members for n, act in self.probes[gid]]
            # Post-activation features (Tatro); a group without an activation is probed at its layers' outputs.
            activated = [p for p, act in probes if act]
            groups.append(PermutationGroup(name, self.size[root], axes, activated or [p for p, _ in probes]))
        return PermutationSpec(groups)


def _unique(axes: Iterable[Axis]) -> list[Axis]:
    seen, out = set(), []
    for a in axes:
        if a not in seen:
            seen.add(a)
            out.append(a)
    return out


def trace_spec(model: nn.Module, input_shape: tuple[int, ...]) -> PermutationSpec:
    """The permutation groups of ``model`` found by tracing it (see the module docstring)."""
    return _Tracer(model, tuple(input_shape)).spec()


def permutation_spec(model: nn.Module, input_shape: tuple[int, ...]) -> PermutationSpec:
    """``model.permutation_spec(input_shape)`` when the model writes its own, else its family's
    (:mod:`modeconn.align.families`, transformers), else the traced one."""
    from modeconn.align.families import family_spec

    own = getattr(model, "permutation_spec", None)
    spec = own(tuple(input_shape)) if callable(own) else family_spec(model)
    spec = spec if spec is not None else trace_spec(model, input_shape)
    spec.check({**dict(model.named_parameters()), **dict(model.named_buffers())})
    return spec


def probe_module(model: nn.Module, spec: PermutationSpec) -> GraphModule:
    """``model`` traced so that it returns the probe activations of ``spec`` (a dict by node name)
    instead of its logits; parameters keep their names, so ``functional_call`` works on it."""
    gm = symbolic_trace(model)
    wanted = {p.name for g in spec.groups for p in g.probe_list()}
    nodes = {node.name: node for node in gm.graph.nodes}
    missing = wanted - set(nodes)
    if missing:
        raise ValueError(f"probe nodes {sorted(missing)} are not in the traced graph")
    output = next(node for node in gm.graph.nodes if node.op == "output")
    with gm.graph.inserting_before(output):
        gm.graph.output({name: nodes[name] for name in sorted(wanted)})
    gm.graph.erase_node(output)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return gm
