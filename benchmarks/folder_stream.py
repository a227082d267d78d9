"""dataset=folder: images held as tensors vs streamed from their files (above the memory limit).

Generates an ImageFolder tree of random PNGs, loads it both ways (`dataset.memory_limit_gb`
above and below its size) and times what a run does with it: one epoch of a convnet's training
batches (the loader alone, and with the SGD step) and one pass of the evaluation protocol at
one point. Prints the ratios streamed / held, and checks both give the same numbers. Runs
alternate; the median of the repeats is reported (this machine is noisy).

    .venv/bin/python benchmarks/folder_stream.py [--images 2000] [--size 32] [--workers 0] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from modeconn.data import TensorLoader, load_dataset
from modeconn.evaluation.metrics import evaluate_point
from modeconn.models import build_model


def make_folder(root: Path, images: int, size: int, classes: int = 10) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", images), ("test", images // 5)):
        for i in range(n):
            c = i % classes
            d = root / split / f"class{c}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(d / f"{i}.png")


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_folder(root, args.images, args.size)
        cfg = {"name": "folder", "root": str(root), "size": [args.size, args.size], "workers": args.workers}
        load = {}
        load["held"] = seconds(lambda: load.setdefault("data_held", load_dataset(cfg)))
        load["streamed"] = seconds(lambda: load.setdefault("data_streamed", load_dataset({**cfg, "memory_limit_gb": 0})))
        data = {"held": load["data_held"], "streamed": load["data_streamed"]}
        torch.manual_seed(0)
        net = build_model("convnet", {"channels": [16, 32], "hidden": 64, "batchnorm": True},
                          data["held"].input_shape, data["held"].num_classes)
        opt = torch.optim.SGD(net.parameters(), lr=0.01)
        params = dict(net.named_parameters())

        def batches(kind):
            for x, y in TensorLoader(data[kind].x_train, data[kind].y_train, 128, seed=0):
                x.sum()

        def train(kind):
            for x, y in TensorLoader(data[kind].x_train, data[kind].y_train, 128, seed=0):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(net(x), y).backward()
                opt.step()

        def evaluate(kind):
            return evaluate_point(net, params, data[kind], wd=5e-4, batch_size=2048, bn_batch_size=128)

        results = {k: {"loader": [], "epoch": [], "evaluate": []} for k in data}
        for _ in range(args.repeats):
            for kind in data:
                results[kind]["loader"].append(seconds(lambda: batches(kind)))
                results[kind]["epoch"].append(seconds(lambda: train(kind)))
                results[kind]["evaluate"].append(seconds(lambda: evaluate(kind)))
        same = evaluate("held").as_dict(), evaluate("streamed").as_dict()
        diff = max(abs(same[0][k] - same[1][k]) for k in same[0])
    print(f"{args.images} + {args.images // 5} PNGs of {args.size}x{args.size}, workers {args.workers}, "
          f"median of {args.repeats}")
    print(f"load: held {load['held']:.2f} s (decodes everything once), streamed {load['streamed']:.2f} s "
          f"(lists files, measures the normalisation)")
    for stage in ("loader", "epoch", "evaluate"):
        h, s = (statistics.median(results[k][stage]) for k in ("held", "streamed"))
        print(f"{stage:<9} held {h:7.3f} s   streamed {s:7.3f} s   streamed/held {s / h:6.1f}x")
    print(f"largest metric difference held vs streamed: {diff:.1e}")


if __name__ == "__main__":
    main()
