"""61-point evaluation of a Bezier curve: modeconn's evaluate_path vs Garipov's protocol, side by side.

Garipov's side re-implements what his `eval_curve.py` does with his `CurveNet`
(curves.py) and `utils.update_bn` / `utils.test`, on CPU: the network holds each
layer's K control points as parameters (the free bend with requires_grad), and every
forward -- every batch -- recombines each layer's weights from them without
`no_grad`, as his `CurveModule.compute_weights_t` does. At each t: reset BN, one
train-mode pass over the unshuffled train loader with momentum b / (n + b) (his
`update_bn`), then eval-mode passes over the train and test loaders, NLL and the
0.5 wd ||w(t)||^2 regulariser per batch (his `test`). Loaders: torch DataLoader of
batch 128 over the in-memory tensors (kinder to him than his torchvision pipeline
from images; num_workers 0, as 1-thread runs have no cores for workers).

Ours: `PathEvaluator` (first-layer precompute where it applies, evaluation batch
`--batch-size`, BN batches 128 as his). `--plain` adds ours without the precompute.
The sides alternate point by point (who goes first alternates too); ratios of the
totals (ours includes its one-off set-up) and the median of the per-point ratios are
printed, never asserted. Numbers are compared at every point.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/curve_eval.py [--points 61] [--train-size N] [--plain]
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from modeconn.data import load_dataset
from modeconn.evaluation.metrics import METRICS
from modeconn.evaluation.profile import PathEvaluator
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


# --- Garipov's CurveNet, as his curves.py builds it (our own code, his structure) ---------------------

class CurveModule(nn.Module):
    """K copies of each parameter (`weight_k`, `bias_k`); weights at t recombined on every call."""

    def __init__(self, shapes: dict[str, tuple], fixed: list[bool]):
        super().__init__()
        self.names, self.k, self.l2 = list(shapes), len(fixed), 0.0
        for name, shape in shapes.items():
            for j, fix in enumerate(fixed):
                self.register_parameter(f"{name}_{j}", nn.Parameter(torch.zeros(shape), requires_grad=not fix))

    def compute_weights_t(self, coeffs):
        out, self.l2 = [], 0.0
        for name in self.names:
            w = None
            for j, c in enumerate(coeffs):
                p = getattr(self, f"{name}_{j}")
                w = p * c if w is None else w + p * c  # his `w_t[i] += parameter * coeff`, out of place here
            self.l2 = self.l2 + torch.sum(w ** 2)
            out.append(w)
        return out


class CurveLinear(CurveModule):
    def __init__(self, fan_in, fan_out, fixed):
        super().__init__({"weight": (fan_out, fan_in), "bias": (fan_out,)}, fixed)

    def forward(self, x, coeffs):
        w, b = self.compute_weights_t(coeffs)
        return F.linear(x, w, b)


class CurveBatchNorm1d(CurveModule):
    def __init__(self, features, fixed):
        super().__init__({"weight": (features,), "bias": (features,)}, fixed)
        self.momentum, self.eps = 0.1, 1e-5
        self.register_buffer("running_mean", torch.zeros(features))
        self.register_buffer("running_var", torch.ones(features))
        self.register_buffer("num_batches_tracked", torch.tensor(0))

    def reset_running_stats(self):
        self.running_mean.zero_()
        self.running_var.fill_(1)
        self.num_batches_tracked.zero_()

    def forward(self, x, coeffs):
        factor = 0.0
        if self.training:
            self.num_batches_tracked += 1
            factor = self.momentum
        w, b = self.compute_weights_t(coeffs)
        return F.batch_norm(x, self.running_mean, self.running_var, w, b, self.training, factor, self.eps)


class CurveMLP(nn.Module):
    """784-512-512-10 with BN: the layers of modeconn's mlp, as curve modules."""

    def __init__(self, widths, fixed):
        super().__init__()
        self.layers = nn.ModuleList()
        for fan_in, fan_out in zip(widths[:-2], widths[1:-1]):
            self.layers.append(CurveLinear(fan_in, fan_out, fixed))
            self.layers.append(CurveBatchNorm1d(fan_out, fixed))
        self.classifier = CurveLinear(widths[-2], widths[-1], fixed)

    def forward(self, x, coeffs):
        x = x.flatten(1)
        for i in range(0, len(self.layers), 2):
            x = F.relu(self.layers[i + 1](self.layers[i](x, coeffs), coeffs))
        return self.classifier(x, coeffs)


class CurveNet(nn.Module):
    def __init__(self, widths, num_bends):
        super().__init__()
        n = num_bends - 1
        self.register_buffer("binom", torch.tensor([float(math.comb(n, k)) for k in range(num_bends)]))
        self.register_buffer("range", torch.arange(0, float(num_bends)))
        self.register_buffer("rev_range", torch.arange(float(n), -1, -1))
        self.net = CurveMLP(widths, [True] + [False] * (num_bends - 2) + [True])
        self.curve_modules = [m for m in self.net.modules() if isinstance(m, CurveModule)]
        self.l2 = 0.0

    def coeffs(self, t):
        return self.binom * torch.pow(t, self.range) * torch.pow(1.0 - t, self.rev_range)

    def weights(self, t):
        c = self.coeffs(t)
        return torch.cat([w.detach().reshape(-1) for m in self.curve_modules for w in m.compute_weights_t(c)])

    def forward(self, x, t):
        out = self.net(x, self.coeffs(t))
        self.l2 = sum(m.l2 for m in self.curve_modules)
        return out

    @torch.no_grad()
    def load_path(self, path: BezierPath):
        """Bend k of every parameter from our path's control points (same layer order)."""
        controls = [path.space.unflatten(c) for c in path.control_points()]
        ours = list(controls[0])  # features.0.linear.weight, ...bias, features.0.bn.weight, ...
        mine = [(m, name) for m in self.curve_modules for name in m.names]
        assert len(ours) == len(mine)
        for key, (m, name) in zip(ours, mine):
            for j, control in enumerate(controls):
                getattr(m, f"{name}_{j}").copy_(control[key])


def garipov_update_bn(loader, model, t):
    """utils.update_bn: train mode, BN reset, momentum b / (n + b); no no_grad, as his."""
    model.train()
    bns = [m for m in model.modules() if isinstance(m, CurveBatchNorm1d)]
    for m in bns:
        m.reset_running_stats()
    seen = 0
    for x, _ in loader:
        b = x.shape[0]
        for m in bns:
            m.momentum = b / (seen + b)
        model(x, t)
        seen += b
    for m in bns:
        m.momentum = 0.1


def garipov_test(loader, model, wd, t):
    """utils.test with curves.l2_regularizer: eval mode, per-batch NLL and NLL + 0.5 wd l2."""
    model.eval()
    nll_sum = loss_sum = correct = 0.0
    for x, y in loader:
        out = model(x, t)
        nll = F.cross_entropy(out, y)
        loss = nll.clone() + 0.5 * wd * model.l2
        nll_sum += nll.item() * x.shape[0]
        loss_sum += loss.item() * x.shape[0]
        correct += out.data.argmax(1, keepdim=True).eq(y.view(-1, 1)).sum().item()
    n = len(loader.dataset)
    return nll_sum / n, loss_sum / n, 100.0 - 100.0 * correct / n


def garipov_point(model, t_value, train_loader, test_loader, wd):
    t = torch.tensor([t_value])
    weights = model.weights(t)  # eval_curve.py computes them for dl at every point
    garipov_update_bn(train_loader, model, t)
    tr_nll, tr_loss, tr_err = garipov_test(train_loader, model, wd, t)
    te_nll, _, te_err = garipov_test(test_loader, model, wd, t)
    return {"train_loss": tr_loss, "train_nll": tr_nll, "train_err": tr_err, "test_nll": te_nll,
            "test_err": te_err}, weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=61)
    ap.add_argument("--train-size", type=int, default=None, help="default: the whole train set")
    ap.add_argument("--test-size", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=2048, help="our eval batch size")
    ap.add_argument("--sgd-steps", type=int, default=30, help="SGD steps making each endpoint")
    ap.add_argument("--plain", action="store_true", help="also time ours without the first-layer precompute")
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
    his = CurveNet([784, 512, 512, data.num_classes], 3)
    his.load_path(path)
    train_loader = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=128, shuffle=False)
    test_loader = DataLoader(TensorDataset(data.x_test, data.y_test), batch_size=128, shuffle=False)
    print(f"fashion_mnist: train {data.x_train.shape[0]}, test {data.x_test.shape[0]}; mlp 784-512-512-10 with BN; "
          f"Bezier, 3 bends; {args.points} points; ours: batch {args.batch_size}, BN batch 128; "
          f"Garipov: his CurveNet/update_bn/test protocol, DataLoader batch 128; threads {torch.get_num_threads()}")

    start = time.perf_counter()
    evaluator = PathEvaluator(path, model, data, wd=wd, batch_size=args.batch_size, bn_batch_size=128)
    setup = time.perf_counter() - start
    print(f"ours: first-layer precompute {'on' if evaluator.cache is not None else 'OFF'}, set-up {setup:.2f} s")
    plain = PathEvaluator(path, model, data, wd=wd, batch_size=args.batch_size, bn_batch_size=128,
                          precompute=False) if args.plain else None

    sides = {"ours": [], "garipov": [], **({"plain": []} if plain else {})}
    ours_vals, his_vals = {m: [] for m in METRICS}, {m: [] for m in METRICS}
    for i, coords in enumerate(path.grid()):
        def run_ours():
            point, _ = evaluator.point(coords)
            for m, v in point.as_dict().items():
                ours_vals[m].append(v)

        def run_his():
            point, _ = garipov_point(his, float(coords[0]), train_loader, test_loader, wd)
            for m in METRICS:
                his_vals[m].append(point[m])

        jobs = [("ours", run_ours), ("garipov", run_his)] + ([("plain", lambda: plain.point(coords))] if plain else [])
        if i % 2:
            jobs.reverse()
        for name, job in jobs:
            start = time.perf_counter()
            job()
            sides[name].append(time.perf_counter() - start)

    t_ours, t_his = setup + sum(sides["ours"]), sum(sides["garipov"])
    print(f"ours    {t_ours:8.2f} s  (set-up {setup:.2f} s + {statistics.median(sides['ours']):.3f} s/point median)")
    print(f"garipov {t_his:8.2f} s  ({statistics.median(sides['garipov']):.3f} s/point median)")
    per_point = [h / o for h, o in zip(sides["garipov"], sides["ours"])]
    print(f"speed-up {t_his / t_ours:.2f}x in total (set-up included); median per point {statistics.median(per_point):.2f}x")
    if plain:
        t_plain = sum(sides["plain"])
        print(f"ours without the precompute {t_plain:8.2f} s: {t_his / t_plain:.2f}x Garipov's; "
              f"the precompute gives {t_plain / t_ours:.2f}x")
    n = {"train": data.x_train.shape[0], "test": data.x_test.shape[0]}
    for m in METRICS:
        if m.endswith("_err"):
            diff = max(abs(a - b) for a, b in zip(ours_vals[m], his_vals[m])) * n[m.split("_")[0]] / 100.0
            print(f"  {m:10s} most examples apart at a point: {diff:.0f}   (range {min(his_vals[m]):.2f} .. {max(his_vals[m]):.2f} %)")
        else:
            diff = max(abs(a - b) / abs(b) for a, b in zip(ours_vals[m], his_vals[m]))
            print(f"  {m:10s} max relative |ours - garipov| {diff:.1e}   (range {min(his_vals[m]):.4f} .. {max(his_vals[m]):.4f})")


if __name__ == "__main__":
    main()
