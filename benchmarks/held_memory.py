"""Path training with freed memory held (as every fit does: src/modeconn/heap.py) vs glibc's
default trimming, each in its own process (the allocator setting lasts a process).

Each process trains a path of the 670k-parameter MLP through the Python API
(`modeconn.train_path`: Lightning, SGD, one thread) on 12,800 random Fashion-MNIST-shaped
examples, and prints its training time and page faults. The two settings alternate over
the repeats; medians and their ratio are printed (never asserted).

    .venv/bin/python benchmarks/held_memory.py [--path simplex|bezier] [--epochs 2] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

TRAIN = """
import json, resource, sys, time, torch
import modeconn as mc
import modeconn.training.fit as fit
from modeconn.models import build_model
setting, kind, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
if setting == "default":
    fit.hold_freed_memory = lambda: False      # glibc's own trimming
torch.manual_seed(0)
net = build_model("mlp", {}, (1, 28, 28), 10)
a = {k: v.clone() for k, v in net.state_dict().items()}
b = {k: v + 0.01 * torch.randn_like(v) for k, v in a.items()}
x, y = torch.randn(12800, 1, 28, 28), torch.randint(0, 10, (12800,))
path = mc.simplex(net, a, b, lmbda=0.1) if kind == "simplex" else mc.bezier(net, a, b)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
start = time.perf_counter()
mc.train_path(path, net, (x, y), epochs=epochs, samples=5 if kind == "simplex" else 1, progress=False)
print(json.dumps({"seconds": time.perf_counter() - start,
                  "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults}))
"""


def train(setting: str, args) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="disabled")
    done = subprocess.run([sys.executable, "-c", TRAIN, setting, args.path, str(args.epochs)],
                          capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--path", choices=["simplex", "bezier"], default="simplex",
                    help="simplex: 3 vertices, 5 points a step (SPRO); bezier: 3 bends")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    runs = {"held": [], "default": []}
    for r in range(args.repeats):
        for setting in (("held", "default") if r % 2 == 0 else ("default", "held")):
            runs[setting].append(train("hold" if setting == "held" else "default", args))
            print(f"repeat {r + 1} {setting:7s} {runs[setting][-1]['seconds']:6.2f} s  "
                  f"{runs[setting][-1]['faults']:>9,d} page faults", flush=True)
    held, default = (statistics.median(x["seconds"] for x in runs[k]) for k in ("held", "default"))
    print(f"{args.path}, {args.epochs} epochs: held {held:.2f} s, glibc default {default:.2f} s: "
          f"{default / held:.2f}x faster held")


if __name__ == "__main__":
    main()
