"""One curve training step, and one SPRO simplex step, vs plain training steps of the same net.

Curve step (Garipov): sample t, w = path.weights(t) (Bezier, 3 bends), logits =
functional_call(net, w, x), loss = CE + 0.5 * wd * ||w||^2, backward, SGD step on
the free bend. SPRO step (Benton): the shared trainer's step on a 3-vertex simplex
(one free vertex) with n_sample = 5 Dirichlet points and the Cayley-Menger volume
term; compared with 5 plain steps, its ideal cost. Plain step: model(x), CE,
backward, SGD with weight_decay. Batches of 128 Fashion-MNIST-shaped inputs (random
tensors: only the shape matters). Each repeat runs a block of consecutive steps of each kind,
as training runs them, after two untimed steps that leave the allocator in that kind's state
(the order reversed every other repeat); medians over the repeats, and the curve/plain ratio
as the median (and quartiles) of each repeat's own pair. Freed memory is held as training
holds it (src/modeconn/heap.py); `--heap default --no-spro` shows glibc's own trimming
(a SPRO step's larger blocks raise glibc's trim threshold for the whole process).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/curve_step.py [--archs mlp mlp_bn convnet] [--steps 10] [--repeats 30] [--heap hold|default]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from modeconn.data import TensorLoader
from modeconn.heap import hold_freed_memory
from modeconn.models import build_model
from modeconn.paths import BezierPath, ParameterSpace
from modeconn.paths.simplex import SimplicialComplexPath
from modeconn.training.classifier import sgd
from modeconn.training.path_trainer import PathModule

SHAPE, CLASSES, BATCH, WD, LR, N_SAMPLE = (1, 28, 28), 10, 128, 5e-4, 0.01, 5


VARIANTS = {"mlp": ("mlp", {}), "mlp_bn": ("mlp", {"batchnorm": True}), "convnet": ("convnet", {}),
            "convnet_bn": ("convnet", {"batchnorm": True})}


def make(arch: str):
    torch.manual_seed(0)
    model = build_model(*VARIANTS[arch], SHAPE, CLASSES)
    space = ParameterSpace(model)
    a = space.flatten(model.state_dict())
    b = a + 0.01 * torch.randn(space.dim)
    path = BezierPath(space, a, b, num_bends=3)
    simplex = SimplicialComplexPath.grown(space, [a, b], [[0, 1]], join=[0], lmbda=0.1)
    return model, path, simplex


def timed(step, batches, steps: int) -> float:
    """Seconds a step over `steps` consecutive steps, after two untimed ones."""
    for x, y in batches[:2]:
        step(x, y)
    start = time.perf_counter()
    for i in range(steps):
        step(*batches[i % len(batches)])
    return (time.perf_counter() - start) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["mlp", "mlp_bn", "convnet"], choices=sorted(VARIANTS))
    ap.add_argument("--steps", type=int, default=10, help="consecutive steps per timed block")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--heap", choices=["hold", "default"], default="hold",
                    help="hold freed memory as training does (default), or glibc's default trimming")
    ap.add_argument("--no-spro", action="store_true",
                    help="curve and plain steps only (SPRO's larger blocks change glibc's default trimming)")
    args = ap.parse_args()
    held = args.heap == "hold" and hold_freed_memory()
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(BATCH, *SHAPE, generator=g), torch.randint(0, CLASSES, (BATCH,), generator=g))
               for _ in range(5)]
    print(f"batch {BATCH} of {SHAPE}; blocks of {args.steps} steps x {args.repeats} repeats (after one warm-up "
          f"repeat); threads {torch.get_num_threads()}; freed memory {'held' if held else 'trimmed (glibc default)'}")
    for arch in args.archs:
        model, path, simplex = make(arch)
        model.train()
        plain_opt = sgd(model.parameters(), lr=LR, momentum=0.9, weight_decay=WD)  # the suite's optimiser
        curve_model = build_model(*VARIANTS[arch], SHAPE, CLASSES).train()
        curve_opt = sgd([path.free], lr=LR, momentum=0.9)
        trainer = PathModule(path, curve_model, TensorLoader(*batches[0], BATCH), lr=LR, momentum=0.9, wd=WD,
                             total_steps=1)
        spro = PathModule(simplex, curve_model, TensorLoader(*batches[0], BATCH), samples=N_SAMPLE, lr=LR,
                          momentum=0.9, wd=WD, total_steps=1)
        spro.log = lambda *a, **k: None   # outside a Trainer
        spro_opt = sgd([simplex.free], lr=LR, momentum=0.9)
        tg = torch.Generator().manual_seed(1)

        def plain_step(x, y):
            plain_opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            plain_opt.step()

        def curve_step(x, y):
            curve_opt.zero_grad(set_to_none=True)
            t = path.sample_coords(1, generator=tg)[0]
            loss, _ = trainer.loss_at(t, x, y)  # the suite's own training loss
            loss.backward()
            curve_opt.step()

        def spro_step(x, y):
            spro_opt.zero_grad(set_to_none=True)
            spro.training_step((x, y), 0).backward()
            spro_opt.step()

        steps = {"plain": plain_step, "curve": curve_step} | ({} if args.no_spro else {"spro": spro_step})
        for step in steps.values():  # warm-up
            timed(step, batches, args.steps)
        times = {name: [] for name in steps}
        for r in range(args.repeats):  # alternate, order reversed every other repeat: drifts hit all alike
            for name in (list(steps) if r % 2 == 0 else list(steps)[::-1]):
                times[name].append(timed(steps[name], batches, args.steps))
        p, c = statistics.median(times["plain"]), statistics.median(times["curve"])
        # The ratio of each repeat's own pair, then their median and quartiles: a block that a
        # neighbour's burst slowed is compared with its own repeat's other block, not with all.
        ratios = sorted(ci / pi for ci, pi in zip(times["curve"], times["plain"]))
        q1, q3 = (ratios[(len(ratios) - 1) * k // 4] for k in (1, 3))
        line = (f"{arch:8s} params {path.space.dim:>9,d}  plain {1e3 * p:7.2f} ms/step  curve {1e3 * c:7.2f} ms/step  "
                f"ratio {statistics.median(ratios):.2f}x (quartiles {q1:.2f}-{q3:.2f})")
        if "spro" in times:
            sp = statistics.median(times["spro"])
            line += (f"  spro (n_sample {N_SAMPLE}) {1e3 * sp:7.2f} ms/step = {sp / (N_SAMPLE * p):.2f}x "
                     f"{N_SAMPLE} plain steps")
        print(line)


if __name__ == "__main__":
    main()
