"""Endpoint-training epoch: modeconn's in-memory TensorLoader vs torch's DataLoader.

Both feed the same tensors, already in memory, to the same SGD loop; only the
loader differs. The epoch ratio is bounded by the model's own compute, so the
loader-alone ratio (batches produced, no model) is printed beside it. Runs alternate, and the
median of the repeats is reported, because this machine is noisy.

    .venv/bin/python benchmarks/loader.py [--dataset fashion_mnist] [--arch mlp] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from modeconn.data import TensorLoader, load_dataset
from modeconn.models import build_model


def epoch_seconds(model, batches, opt) -> float:
    start = time.perf_counter()
    for x, y in batches:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return time.perf_counter() - start


def iterate_seconds(batches) -> float:
    """The loader alone: produce every batch of an epoch, no model."""
    start = time.perf_counter()
    for x, y in batches:
        x.sum()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--arch", default="mlp")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    data = load_dataset({"name": args.dataset, "root": None, "download": False})
    torch.manual_seed(0)
    model = build_model(args.arch, {}, data.input_shape, data.num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    ours = TensorLoader(data.x_train, data.y_train, args.batch_size, shuffle=True, augment=data.augment)
    theirs = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=args.batch_size, shuffle=True)

    epoch_seconds(model, ours, opt)  # warm-up
    t_ours, t_theirs, l_ours, l_theirs = [], [], [], []
    for r in range(args.repeats):
        ours.set_epoch(r)
        t_ours.append(epoch_seconds(model, ours, opt))
        t_theirs.append(epoch_seconds(model, theirs, opt))
        l_ours.append(iterate_seconds(ours))
        l_theirs.append(iterate_seconds(theirs))
    a, b = statistics.median(t_ours), statistics.median(t_theirs)
    la, lb = statistics.median(l_ours), statistics.median(l_theirs)
    print(f"{args.arch} on {args.dataset}, batch {args.batch_size}, {len(ours)} steps/epoch, "
          f"median of {args.repeats}, torch threads {torch.get_num_threads()}")
    print(f"  TensorLoader epoch      {a:8.3f} s")
    print(f"  DataLoader epoch        {b:8.3f} s")
    print(f"  speed-up (DataLoader / TensorLoader): {b / a:.2f}x   (aim >= 2x)")
    print(f"  loader alone: TensorLoader {la:.3f} s, DataLoader {lb:.3f} s -> {lb / la:.1f}x; "
          f"its share of the DataLoader epoch: {100 * lb / b:.0f}%")


if __name__ == "__main__":
    main()
