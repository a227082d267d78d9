"""Garipov et al.'s CIFAR recipe timed in one command: modeconn vs a plain PyTorch loop in his style.

On CIFAR-shaped synthetic data (50,000 x 3 x 32 x 32, random labels: throughput only,
nothing is learnt), for VGG16 and PreResNet110, each side times one endpoint epoch, one
curve epoch (Bezier, 3 bends) and a 61-point evaluation, and the script projects the
paper's full recipe: 2 endpoints x 200 epochs + 600 curve epochs + the evaluation, in hours.

- modeconn: data resident on the device, `TensorLoader` with on-device crop+flip,
  Lightning `fit` with `trainer=gpu`'s options (bf16-mixed, channels_last; `--compile`
  adds torch.compile), the fused curve step, `PathEvaluator` with batch 8192.
- Garipov's style: torch DataLoader over per-example CPU tensors with torchvision
  transforms (RandomCrop 32 pad 4, RandomHorizontalFlip), batch 128, fp32, copies to
  the device per batch; curves with per-layer weights recombined for every batch under
  autograd (his CurveNet); evaluation with his update_bn (momentum b / (n + b)) and test
  passes, batch 128, weights recombined per batch.

`--quick` (CI, CPU): 32 train / 16 test examples, batch 16, 2 evaluation points, float32
(bf16 autocast is emulated on a CPU); every time is scaled linearly to the full sizes for
the projection: it checks that the command runs, its numbers mean little.

    python benchmarks/gpu_recipe.py            # on a GPU: the full measurement (< 8 min on one H100)
    python benchmarks/gpu_recipe.py --quick    # anywhere, < 2 min on a CPU
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call
from torch.utils.data import DataLoader, Dataset as TorchDataset

from modeconn.data import Dataset, TensorLoader
from modeconn.evaluation.profile import PathEvaluator
from modeconn.models import build_model
from modeconn.paths import BezierPath, ParameterSpace
from modeconn.training import accel
from modeconn.training.classifier import ClassifierModule
from modeconn.training.fit import fit
from modeconn.training.path_trainer import PathModule

FULL_TRAIN, FULL_TEST, POINTS, ENDPOINT_EPOCHS, CURVE_EPOCHS = 50_000, 10_000, 61, 200, 600
LR, WD = 0.05, 5e-4


def synthetic(n_train: int, n_test: int, device) -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_train + n_test, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (n_train + n_test,), generator=g)
    return Dataset("cifar_shaped", x[:n_train].to(device), y[:n_train].to(device), x[n_train:].to(device),
                   y[n_train:].to(device), 10, (3, 32, 32), "crop_flip")


def timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


# --- modeconn ----------------------------------------------------------------------------------

def ours(arch: str, cpu_data: Dataset, args, device) -> dict[str, float]:
    trainer_cfg = {"accelerator": "gpu" if device.type == "cuda" else "cpu", "devices": 1, "progress": False,
                   # bf16 autocast on a CPU is emulated and slow: there the quick check runs float32
                   "precision": "bf16-mixed" if device.type == "cuda" else "32-true", "channels_last": True,
                   "compile": args.compile}
    data = synthetic(len(cpu_data.x_train), len(cpu_data.x_test), device)
    model = accel.prepare(build_model(arch, {}, (3, 32, 32), 10).to(device), data, trainer_cfg)
    loader = TensorLoader(data.x_train, data.y_train, args.batch_size, augment="crop_flip")
    out = {}
    with tempfile.TemporaryDirectory() as work:
        module = ClassifierModule(model, loader, lr=LR, momentum=0.9, wd=WD, total_steps=len(loader))
        out["endpoint epoch"] = timed(lambda: fit(module, epochs=1, work_dir=f"{work}/e", trainer_cfg=trainer_cfg,
                                                  identity={}, name="endpoint"))
        space = ParameterSpace(model)
        a = space.flatten(model.state_dict())
        path = BezierPath(space, a, a + 0.01 * torch.randn_like(a), num_bends=3, points=args.points).to(device)
        curve = PathModule(path, model, loader, lr=LR, momentum=0.9, wd=WD, total_steps=len(loader))
        out["curve epoch"] = timed(lambda: fit(curve, epochs=1, work_dir=f"{work}/c", trainer_cfg=trainer_cfg,
                                               identity={}, name="curve"))

    def evaluate():
        evaluator = PathEvaluator(path, model, data, wd=WD, batch_size=8192, bn_batch_size=128)
        for coords in path.grid():
            evaluator.point(coords)
    out["evaluation"] = timed(evaluate)
    return out


# --- Garipov's style -----------------------------------------------------------------------------

class Images(TorchDataset):
    """Per-example CPU tensors through torchvision transforms, as his data.py's loaders."""

    def __init__(self, x, y, train: bool):
        import torchvision.transforms.v2 as T
        self.x, self.y = x, y
        self.transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()]) if train else None

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        x = self.x[i]
        return (self.transform(x) if self.transform else x), self.y[i]


def curve_weights(points: list[dict], coeffs) -> dict:
    """His CurveModule.compute_weights_t for every layer: sum_k c_k theta_k, under autograd."""
    out = {}
    for name in points[0]:
        w = None
        for c, p in zip(coeffs, points):
            w = p[name] * c if w is None else w + p[name] * c
        out[name] = w
    return out


def bezier(t: torch.Tensor) -> torch.Tensor:
    r = torch.arange(3.0, device=t.device)
    return torch.tensor([1.0, 2.0, 1.0], device=t.device) * t ** r * (1 - t) ** (2 - r)


def garipov(arch: str, data: Dataset, args, device) -> dict[str, float]:
    workers = 0 if args.quick else 4
    kw = dict(batch_size=args.batch_size, num_workers=workers, pin_memory=device.type == "cuda")
    train_aug = DataLoader(Images(data.x_train, data.y_train, True), shuffle=True, **kw)
    train = DataLoader(Images(data.x_train, data.y_train, False), shuffle=False, **kw)
    test = DataLoader(Images(data.x_test, data.y_test, False), shuffle=False, **kw)
    model = build_model(arch, {}, (3, 32, 32), 10).to(device)
    out = {}

    def endpoint_epoch():
        opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=WD)
        model.train()
        for x, y in train_aug:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    out["endpoint epoch"] = timed(endpoint_epoch)

    base = {k: v.detach() for k, v in model.named_parameters()}
    bend = {k: (v + 0.01 * torch.randn_like(v)).requires_grad_() for k, v in base.items()}
    points = [base, bend, {k: v + 0.01 for k, v in base.items()}]

    def curve_epoch():
        opt = torch.optim.SGD(bend.values(), lr=LR, momentum=0.9)
        model.train()
        for x, y in train_aug:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            w = curve_weights(points, bezier(torch.rand(1, device=device)))
            loss = F.cross_entropy(functional_call(model, w, (x,)), y)
            loss = loss + 0.5 * WD * sum(torch.sum(v ** 2) for v in w.values())
            opt.zero_grad()
            loss.backward()
            opt.step()
    out["curve epoch"] = timed(curve_epoch)

    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]

    def evaluate():
        for t in torch.linspace(0, 1, args.points, device=device):
            c = bezier(t)
            model.train()  # update_bn
            for m in bns:
                m.reset_running_stats()
            seen = 0
            for x, _ in train:
                for m in bns:
                    m.momentum = x.shape[0] / (seen + x.shape[0])
                functional_call(model, curve_weights(points, c), (x.to(device),))
                seen += x.shape[0]
            model.eval()  # test() on train and test
            for loader in (train, test):
                for x, y in loader:
                    w = curve_weights(points, c)
                    out_ = functional_call(model, w, (x.to(device),))
                    (F.cross_entropy(out_, y.to(device)) + 0.5 * WD * sum(torch.sum(v ** 2) for v in w.values())).item()
    out["evaluation"] = timed(evaluate)
    return out


def project(t: dict[str, float], scale_train: float, scale_eval: float, points: int) -> float:
    """Hours for 2 x 200 endpoint epochs + 600 curve epochs + one 61-point evaluation."""
    evaluation = t["evaluation"] * scale_eval * POINTS / points
    return (2 * ENDPOINT_EPOCHS * t["endpoint epoch"] * scale_train + CURVE_EPOCHS * t["curve epoch"] * scale_train
            + evaluation) / 3600


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, for CI on a CPU")
    ap.add_argument("--archs", nargs="+", default=["vgg16", "preresnet110"])
    ap.add_argument("--compile", action="store_true", help="modeconn with trainer.compile=true")
    args = ap.parse_args()
    n_train, n_test = (32, 16) if args.quick else (FULL_TRAIN, FULL_TEST)
    args.batch_size = 16 if args.quick else 128
    args.points = 2 if args.quick else POINTS
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; {n_train} train / {n_test} test CIFAR-shaped examples; batch {args.batch_size}; "
          f"{args.points} evaluation points; modeconn: {'bf16-mixed' if device.type == 'cuda' else 'float32'}, channels_last"
          f"{', torch.compile' if args.compile else ''}; Garipov's style: fp32 DataLoader")
    cpu_data = synthetic(n_train, n_test, "cpu")
    # His evaluation reads the train set twice and the test set once per point; ours the same.
    scale_train = FULL_TRAIN / n_train
    scale_eval = (2 * FULL_TRAIN + FULL_TEST) / (2 * n_train + n_test)
    for arch in args.archs:
        theirs = garipov(arch, cpu_data, args, device)
        mine = ours(arch, cpu_data, args, device)
        for stage in ("endpoint epoch", "curve epoch", "evaluation"):
            print(f"{arch:13s} {stage:15s} modeconn {mine[stage]:8.2f} s   Garipov's style {theirs[stage]:8.2f} s   "
                  f"{theirs[stage] / mine[stage]:5.2f}x")
        h_mine, h_theirs = (project(t, scale_train, scale_eval, args.points) for t in (mine, theirs))
        print(f"{arch:13s} full recipe (2 x {ENDPOINT_EPOCHS} + {CURVE_EPOCHS} epochs + {POINTS}-point evaluation)"
              f"{' projected from the quick sizes' if args.quick else ''}: modeconn {h_mine:.1f} h, "
              f"Garipov's style {h_theirs:.1f} h ({h_theirs / h_mine:.2f}x)")
        if math.isnan(h_mine):
            raise SystemExit("a time was not measured")


if __name__ == "__main__":
    main()
