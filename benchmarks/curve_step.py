"""One curve training step vs one plain training step of the same net.

Curve step (Garipov): sample t, w = path.weights(t) (Bezier, 3 bends), logits =
functional_call(net, w, x), loss = CE + 0.5 * wd * ||w||^2, backward, SGD step on
the free bend. Plain step: model(x), CE, backward, SGD with weight_decay. Batches
of 128 Fashion-MNIST-shaped inputs (random tensors: only the shape matters).
Steps alternate between the two, after a warm-up; medians over the repeats.

    .venv/bin/python benchmarks/curve_step.py [--archs mlp convnet] [--steps 20] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from modeconn.data import TensorLoader
from modeconn.models import build_model
from modeconn.paths import BezierPath, ParameterSpace
from modeconn.training.path_trainer import PathModule

SHAPE, CLASSES, BATCH, WD, LR = (1, 28, 28), 10, 128, 5e-4, 0.01


def make(arch: str):
    torch.manual_seed(0)
    model = build_model(arch, {}, SHAPE, CLASSES)
    space = ParameterSpace(model)
    a = space.flatten(model.state_dict())
    b = a + 0.01 * torch.randn(space.dim)
    path = BezierPath(space, a, b, num_bends=3)
    return model, path


def timed(step, batches) -> float:
    start = time.perf_counter()
    for x, y in batches:
        step(x, y)
    return (time.perf_counter() - start) / len(batches)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["mlp", "convnet"])
    ap.add_argument("--steps", type=int, default=20, help="steps per timed repeat")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(BATCH, *SHAPE, generator=g), torch.randint(0, CLASSES, (BATCH,), generator=g))
               for _ in range(args.steps)]
    print(f"batch {BATCH} of {SHAPE}; {args.steps} steps x {args.repeats} repeats (after one warm-up repeat); "
          f"threads {torch.get_num_threads()}")
    for arch in args.archs:
        model, path = make(arch)
        model.train()
        plain_opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=WD)
        curve_model = build_model(arch, {}, SHAPE, CLASSES).train()
        curve_opt = torch.optim.SGD([path.free], lr=LR, momentum=0.9)
        trainer = PathModule(path, curve_model, TensorLoader(*batches[0], BATCH), lr=LR, momentum=0.9, wd=WD,
                             total_steps=1)
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

        timed(plain_step, batches), timed(curve_step, batches)  # warm-up
        plain, curve = [], []
        for _ in range(args.repeats):  # alternate, so load changes hit both alike
            plain.append(timed(plain_step, batches))
            curve.append(timed(curve_step, batches))
        p, c = statistics.median(plain), statistics.median(curve)
        print(f"{arch:8s} params {path.space.dim:>9,d}  plain {1e3 * p:7.2f} ms/step  curve {1e3 * c:7.2f} ms/step  "
              f"ratio {c / p:.2f}x")


if __name__ == "__main__":
    main()
