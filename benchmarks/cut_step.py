"""A random-cut training step (w = anchor + E z, Fort & Jastrzebski / Li et al.) against a plain
step of the same network, and the scatter form of E z against torch.sparse.mm.

E is the suite's very sparse projection (sqrt(D) non-zeros a column). Printed, measured side
by side in one run: the cut step's cost as a multiple of a plain step (the projection's
overhead), and how much faster `RandomCut`'s index_add scatter is than the same product
through a torch sparse COO matrix, forward and backward.

    .venv/bin/python benchmarks/cut_step.py [--dim 1000] [--repeats 30]
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call

from modeconn.models import build_model
from modeconn.paths import ParameterSpace
from modeconn.paths.cut import RandomCut


def seconds(step, repeats: int) -> float:
    step()                                   # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dim", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build_model("mlp", {"width": 512, "depth": 2}, (1, 28, 28), 10)
    space = ParameterSpace(model)
    anchor = space.flatten(dict(model.named_parameters()))
    cut = RandomCut(space, anchor, args.dim, seed=0)
    x, y = torch.randn(args.batch_size, 1, 28, 28), torch.randint(0, 10, (args.batch_size,))

    def plain():
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()

    def cut_step():
        cut.zero_grad()
        F.cross_entropy(functional_call(model, space.unflatten(cut.vector()), (x,)), y).backward()

    cols = torch.arange(args.dim).repeat_interleave(cut.values.shape[1])
    coo = torch.sparse_coo_tensor(torch.stack([cut.rows, cols]), cut.values.reshape(-1),
                                  (anchor.numel(), args.dim), check_invariants=False).coalesce()

    def scatter():
        cut.zero_grad()
        cut.vector().sum().backward()

    def sparse_mm():
        cut.zero_grad()
        (anchor + torch.sparse.mm(coo, cut.z.unsqueeze(1)).squeeze(1)).sum().backward()

    t_plain, t_cut = seconds(plain, args.repeats), seconds(cut_step, args.repeats)
    t_scatter, t_mm = seconds(scatter, args.repeats), seconds(sparse_mm, args.repeats)
    print(f"MLP 784-512-512-10 ({anchor.numel():,} weights), d = {args.dim}, {cut.values.numel():,} non-zeros in E")
    print(f"cut step / plain step: {t_cut / t_plain:.2f}x")
    print(f"E z forward+backward, torch.sparse.mm / index_add scatter: {t_mm / t_scatter:.1f}x")


if __name__ == "__main__":
    main()
