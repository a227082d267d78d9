"""The Path protocol: every method is a map from coordinates to weights.

A Path holds the anchor weights (trained endpoints) as buffers and the trainable
control points as parameters. Methods differ only in the coordinates they accept,
how training samples them, and how coordinates mix the control points.
"""
from __future__ import annotations

import torch
from torch import nn

from modeconn.paths.space import ParameterSpace


def segment_grid(segments: int, points_per_segment: int) -> torch.Tensor:
    """Evaluation t of a path over [0, segments]: ``points_per_segment`` evenly spaced points per
    segment (both ends included, shared ends once), so every integer t is evaluated exactly."""
    steps = points_per_segment - 1
    t = (torch.arange(segments)[:, None] + torch.arange(steps)[None, :] / steps).reshape(-1)
    return torch.cat([t, torch.tensor([float(segments)])]).unsqueeze(1)


class Path(nn.Module):
    """Base class: subclasses implement `vector(coords)`.

    `coords` is a 1-D tensor of length `coord_dim` (a curve's t is `tensor([t])`).
    """

    coord_dim: int = 1

    def __init__(self, space: ParameterSpace, points: int = 61):
        super().__init__()
        self.space = space
        self.points = points

    def vector(self, coords: torch.Tensor) -> torch.Tensor:
        """The flat weight vector at `coords`."""
        raise NotImplementedError

    def weights(self, coords: torch.Tensor) -> dict[str, torch.Tensor]:
        """The network's named parameters at `coords` (differentiable)."""
        return self.space.unflatten(self.vector(coords))

    def weights_and_sq_norm(self, coords: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """`weights(coords)` and ||w||^2 (the training penalty's), both differentiable: what one
        training step needs. Control-point paths compute both in one pass per tensor."""
        v = self.vector(coords)
        return self.space.unflatten(v), torch.dot(v, v)

    def sample_coords(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Training coordinates: t ~ U(0, 1) for curves (Garipov)."""
        return torch.rand(n, self.coord_dim, generator=generator)

    def grid(self) -> torch.Tensor:
        """Evaluation coordinates, shape (points, coord_dim): evenly spaced t."""
        return torch.linspace(0.0, 1.0, self.points).unsqueeze(1)

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.parameters())

    def penalty(self) -> torch.Tensor | float:
        """An extra training loss term of the path's own (PAM's proximal pull); none by default."""
        return 0.0

    def project_(self) -> None:
        """Called after every optimiser step to restore constraints (PAM's Birkhoff projection)."""

    @property
    def device(self) -> torch.device:
        for tensor in (*self.buffers(), *self.parameters()):
            return tensor.device
        return torch.device("cpu")


class ControlPointPath(Path):
    """A path whose weights are a coefficient-weighted sum of control points.

    Linear, Bezier, PolyChain and simplexes are all of this form; only
    `coefficients` differs. Fixed points (the endpoints) are buffers, free points
    (bends, new vertices) are parameters; `order` says where each sits.
    """

    def __init__(self, space: ParameterSpace, control: list[torch.Tensor], free: list[bool], **kw):
        super().__init__(space, **kw)
        if len(control) != len(free):
            raise ValueError("one `free` flag per control point")
        fixed_idx = [i for i, f in enumerate(free) if not f]
        free_idx = [i for i, f in enumerate(free) if f]
        self.register_buffer("fixed_index", torch.tensor(fixed_idx, dtype=torch.long), persistent=False)
        self.register_buffer("free_index", torch.tensor(free_idx, dtype=torch.long), persistent=False)
        stack = lambda idx: torch.stack([control[i].detach().float() for i in idx]) if idx else torch.zeros(0, space.dim)
        self.register_buffer("fixed", stack(fixed_idx))
        self.free = nn.Parameter(stack(free_idx).clone(), requires_grad=bool(free_idx))

    @property
    def num_points(self) -> int:
        return self.fixed.shape[0] + self.free.shape[0]

    def coefficients(self, coords: torch.Tensor) -> torch.Tensor:
        """Mixing weights of the control points at `coords`, shape (num_points,)."""
        raise NotImplementedError

    def control_points(self) -> torch.Tensor:
        """All control points in order, shape (num_points, dim)."""
        out = self.fixed.new_empty(self.num_points, self.space.dim)
        out[self.fixed_index] = self.fixed
        out[self.free_index] = self.free.detach()
        return out

    def weights_and_sq_norm(self, coords: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        c = self.coefficients(coords).to(self.fixed).detach()
        out = _Combine.apply(c[self.fixed_index], c[self.free_index], self.fixed, self.free, self.space)
        return dict(zip(self.space.names, out[:-1])), out[-1]

    def vector(self, coords: torch.Tensor) -> torch.Tensor:
        c = self.coefficients(coords).to(self.fixed)  # differentiable in the points and the coordinates
        return _mix_tensors(c[self.fixed_index], c[self.free_index], self.fixed, self.free)


class _Combine(torch.autograd.Function):
    """w = sum_k c_k P_k as the network's named tensors, and ||w||^2, for a training step.

    Everything runs on the one flat vector w, a few whole-vector operations whatever the
    number of parameter tensors: a loop over the tensors cost ~75 us of Python and dispatch
    per tensor and step (PreResNet110's 331 tensors: 29 ms a step for the combination and its
    gradient, 15 ms this way). The tensors handed to the network are views of w made here, so
    each comes back to `backward` with its own gradient (a split *after* the Function would
    have autograd build a D-long gradient per view); backward turns them and the penalty's
    2 g_sq w into the free points' gradient, c_k (g + 2 g_sq w). The coefficients are not
    differentiated: coordinates are sampled, never learnt.
    """

    @staticmethod
    def forward(ctx, c_fixed, c_free, fixed, free, space):
        w = _mix(c_fixed, c_free, fixed, free)
        ctx.space, ctx.free_rows = space, free.shape[0]
        ctx.save_for_backward(c_free, w)
        return (*space.unflatten(w).values(), torch.dot(w, w))

    @staticmethod
    def backward(ctx, *grads):
        if not ctx.needs_input_grad[3] or not ctx.free_rows:
            return None, None, None, None, None
        c_free, w = ctx.saved_tensors
        if w.device.type == "cpu" and ctx.free_rows == 1:  # a curve's one bend: c (g + 2 g_sq w) in two passes
            (c,) = c_free.tolist()
            grad_free = w.new_empty(1, w.numel())
            torch.mul(w, 2 * grads[-1].item() * c, out=grad_free[0])
            torch._foreach_add_(list(ctx.space.unflatten(grad_free[0]).values()), list(grads[:-1]), alpha=c)
            return None, None, None, grad_free, None
        h = torch.mul(w, 2 * grads[-1])  # the penalty's gradient, then the network's added per tensor
        torch._foreach_add_(list(ctx.space.unflatten(h).values()), list(grads[:-1]))
        return None, None, None, torch.outer(c_free, h), None


def _mix(c_fixed: torch.Tensor, c_free: torch.Tensor, fixed: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
    """sum_k c_k P_k over the fixed and free points (rows): on CPU with the coefficients as
    numbers (scaled adds and lerps, 2x faster there than the (D, K) matrix-vector product and
    steadier), elsewhere as tensors (no host synchronisation)."""
    if fixed.device.type == "cpu":
        return _mix_numbers([*c_fixed.tolist(), *c_free.tolist()], [*fixed, *free])
    return _mix_tensors(c_fixed, c_free, fixed, free)


def _mix_tensors(c_fixed: torch.Tensor, c_free: torch.Tensor, fixed: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
    """Two matrix-vector products on the transposed (D, K) views, no K x D stack: `c @ points`
    took the vector-matrix route, 4x slower at D = 670k (benchmarks/curve_step.py)."""
    w = torch.mv(fixed.t(), c_fixed)
    return torch.addmv(w, free.t(), c_free) if free.shape[0] else w


def _mix_numbers(coefficients: list[float], points: list[torch.Tensor]) -> torch.Tensor:
    """sum_k c_k P_k, a fresh tensor, with as few passes over memory as the weights allow
    (the step is memory-bound): zero weights are skipped, and non-negative weights run as a
    chain of lerps (running weighted means, scaled at the end unless they sum to 1, as
    Bezier, PolyChain and barycentric weights do): one pass per point instead of two."""
    pairs = [(c, p) for c, p in zip(coefficients, points) if c != 0.0]
    if not pairs:
        return torch.zeros_like(points[0])
    (c0, p0), rest = pairs[0], pairs[1:]
    if not rest or any(c < 0 for c, _ in pairs):
        w = torch.mul(p0, c0)
        for c, p in rest:
            w.add_(p, alpha=c)
        return w
    total, w = c0, p0
    for c, p in rest:
        total += c
        w = torch.lerp(w, p, c / total) if w is p0 else w.lerp_(p, c / total)
    return w if abs(total - 1.0) < 1e-6 else w.mul_(total)
