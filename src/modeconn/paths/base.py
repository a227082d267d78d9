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
        c = self.coefficients(coords).to(self.fixed)
        # Two matrix-vector products instead of stacking all points (no K x D copy per step),
        # written as mv on the transposed (D, K) views: `c @ points` took the vector-matrix
        # route, 4x slower here at D = 670k (benchmarks/curve_step.py).
        v = torch.mv(self.fixed.t(), c[self.fixed_index])
        if self.free.shape[0]:
            v = torch.addmv(v, self.free.t(), c[self.free_index])
        return v


class _Combine(torch.autograd.Function):
    """w_i = sum_k c_k P_k[i] for every parameter tensor i, and ||w||^2, for a training step.

    Against `unflatten(vector(t))` plus `dot(v, v)` (benchmarks/curve_step.py) it saves
    the passes over the D-long vector that autograd would add (the split's backward
    concatenating the gradients, the penalty's own gradient and its accumulation, the
    outer product to the free points): each tensor is combined and squared, and
    backwards turned into its slice of the free points' gradient, c_k (g_i + 2 g_sq w_i),
    with scalar coefficients on CPU. (On an accelerator
    the same sums run as whole-tensor operations with tensor coefficients: no host
    synchronisation per step.) The coefficients are not differentiated: coordinates
    are sampled, never learnt.
    """

    @staticmethod
    def forward(ctx, c_fixed, c_free, fixed, free, space):
        # One fresh tensor per parameter, not views of one flat vector: autograd turns the
        # gradient of each view of a Function's output into a full-length gradient of its base
        # (ten D-long passes per step here).
        cpu = fixed.device.type == "cpu"
        points = [*fixed, *free]
        c = [*c_fixed.tolist(), *c_free.tolist()] if cpu else None
        ws, sq, start = [], (0.0 if cpu else fixed.new_zeros(())), 0
        for n, shape in zip(space.numels, space.shapes):
            stop = start + n
            if cpu:
                w = torch.mul(points[0][start:stop], c[0])
                for ck, p in zip(c[1:], points[1:]):
                    w.add_(p[start:stop], alpha=ck)
                sq += torch.dot(w, w).item()
            else:
                w = torch.mv(fixed[:, start:stop].t(), c_fixed)
                if free.shape[0]:
                    w = torch.addmv(w, free[:, start:stop].t(), c_free)
                sq = sq + torch.dot(w, w)
            ws.append(w.view(shape))
            start = stop
        ctx.space, ctx.free_shape = space, free.shape
        ctx.save_for_backward(c_free, *ws)
        return (*ws, fixed.new_tensor(sq) if cpu else sq)

    @staticmethod
    def backward(ctx, *grads):
        c_free, *ws = ctx.saved_tensors
        if not ctx.needs_input_grad[3] or not ctx.free_shape[0]:
            return None, None, None, None, None
        grad_free = c_free.new_empty(ctx.free_shape)
        cpu = c_free.device.type == "cpu"
        c = c_free.tolist() if cpu else c_free
        two_g_sq = 2 * grads[-1].item() if cpu else 2 * grads[-1]
        start = 0
        for n, g, w in zip(ctx.space.numels, grads[:-1], ws):
            stop = start + n
            w = w.reshape(-1)
            g = torch.zeros_like(w) if g is None else g.reshape(-1)
            if cpu:
                h = torch.add(g, w, alpha=two_g_sq, out=grad_free[0, start:stop])
                for k in range(1, len(c)):
                    torch.mul(h, c[k], out=grad_free[k, start:stop])
                h.mul_(c[0])
            else:
                h = torch.addcmul(g, w, two_g_sq)
                torch.mul(c[:, None], h[None, :], out=grad_free[:, start:stop])
            start = stop
        return None, None, None, grad_free, None
