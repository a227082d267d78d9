"""61-point evaluation of a Bezier curve: modeconn's evaluate_path vs Garipov's protocol.

Garipov's protocol, point by point through torch DataLoaders of batch 128: for
each t, load w(t) into the net, reset BN, one train-mode pass (momentum None)
over the unshuffled train batches, then eval-mode passes over train and test.
Ours is `evaluate_path` with eval.batch_size 2048 and the same BN batches
(bn_batch_size 128, unshuffled), so the numbers agree to ~1e-4. Both run in the
same process, side by side; ratios are printed, absolute times are not asserted.

    .venv/bin/python benchmarks/curve_eval.py [--points 61] [--train-size N] [--test-size N]
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from modeconn.data import load_dataset
from modeconn.evaluation.metrics import METRICS
from modeconn.evaluation.profile import evaluate_path
from modeconn.models import build_model
from modeconn.paths import BezierPath, ParameterSpace


def sgd_endpoint(seed: int, data, steps: int, params: dict) -> torch.Tensor:
    torch.manual_seed(seed)
    model = build_model("mlp", params, data.input_shape, data.num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, data.x_train.shape[0], (128,), generator=g)
        opt.zero_grad()
        F.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
        opt.step()
    return ParameterSpace(model).flatten(model.state_dict())


@torch.no_grad()
def garipov_point(model, weights, train_loader, test_loader, wd):
    for name, p in model.named_parameters():
        p.copy_(weights[name])
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for x, _ in train_loader:
        model(x)
    model.eval()
    out = {}
    for split, loader in (("train", train_loader), ("test", test_loader)):
        nll, wrong, n = 0.0, 0, 0
        for x, y in loader:
            logits = model(x)
            nll += F.cross_entropy(logits, y, reduction="sum").item()
            wrong += (logits.argmax(1) != y).sum().item()
            n += x.shape[0]
        out[f"{split}_nll"], out[f"{split}_err"] = nll / n, 100.0 * wrong / n
    sq = sum(p.double().pow(2).sum().item() for p in model.parameters())
    out["train_loss"] = out["train_nll"] + 0.5 * wd * sq
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=61)
    ap.add_argument("--train-size", type=int, default=None, help="default: the whole train set")
    ap.add_argument("--test-size", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=2048, help="our eval batch size")
    ap.add_argument("--sgd-steps", type=int, default=30, help="SGD steps making each endpoint")
    args = ap.parse_args()

    cfg = {"name": "fashion_mnist", "root": None, "download": False}
    if args.train_size:
        cfg["train_size"] = args.train_size
    if args.test_size:
        cfg["test_size"] = args.test_size
    data = load_dataset(cfg)
    params = {"width": 512, "depth": 2, "batchnorm": True}
    wd = 5e-4
    model = build_model("mlp", params, data.input_shape, data.num_classes)
    space = ParameterSpace(model)
    w_a, w_b = sgd_endpoint(1, data, args.sgd_steps, params), sgd_endpoint(2, data, args.sgd_steps, params)
    path = BezierPath(space, w_a, w_b, num_bends=3, points=args.points)
    with torch.no_grad():  # a bend off the segment, so the middle of the curve is not the straight line
        path.free.add_(0.02 * torch.randn(path.free.shape, generator=torch.Generator().manual_seed(0)))
    print(f"fashion_mnist: train {data.x_train.shape[0]}, test {data.x_test.shape[0]}; mlp 784-512-512-10 with BN; "
          f"Bezier, 3 bends, endpoints from {args.sgd_steps} SGD steps; {args.points} points; "
          f"ours: batch {args.batch_size}, BN batch 128; Garipov: DataLoader batch 128; threads {torch.get_num_threads()}")

    start = time.perf_counter()
    ours, _ = evaluate_path(path, model, data, wd=wd, batch_size=args.batch_size, bn_batch_size=128, progress=False)
    t_ours = time.perf_counter() - start

    ref_model = build_model("mlp", params, data.input_shape, data.num_classes)
    train_loader = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=128, shuffle=False)
    test_loader = DataLoader(TensorDataset(data.x_test, data.y_test), batch_size=128, shuffle=False)
    start = time.perf_counter()
    ref = {m: [] for m in METRICS}
    for coords in path.grid():
        weights = {k: v.detach() for k, v in path.weights(coords).items()}
        point = garipov_point(ref_model, weights, train_loader, test_loader, wd)
        for m in METRICS:
            ref[m].append(point[m])
    t_ref = time.perf_counter() - start

    print(f"ours    {t_ours:8.2f} s  ({t_ours / args.points:.3f} s/point)")
    print(f"garipov {t_ref:8.2f} s  ({t_ref / args.points:.3f} s/point)")
    print(f"speed-up {t_ref / t_ours:.2f}x")
    for m in METRICS:
        diff = max(abs(a - b) for a, b in zip(ours[m], ref[m]))
        print(f"  max |ours - garipov| {m:10s} {diff:.2e}   (range {min(ref[m]):.4f} .. {max(ref[m]):.4f})")


if __name__ == "__main__":
    main()
