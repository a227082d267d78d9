"""Alignment of ResNet-20 (CIFAR shape) or a ViT (timm, Fashion-MNIST shape, heads as blocks):
activation matching on 10,000 inputs and weight matching.

Two independently initialised ResNet-20s (no CIFAR download here: inputs are random
images of CIFAR's shape; the cost does not depend on what the pixels are). Printed:
seconds and peak memory of each matcher, and side by side in the same run the
ratio of the streaming correlation's memory to what materialising every probe's
features (the straightforward implementation) would hold.

    .venv/bin/python benchmarks/align.py [--arch resnet20|vit] [--samples 10000] [--batch-size 500]
                                         [--device cpu|cuda]

The ViT is conf/arch/vit.yaml's default (width 64, depth 4, 4 heads, patch 7) on 28x28 inputs;
its features are read with forward hooks, so the memory comparison is printed for ResNet-20 only.
"""
from __future__ import annotations

import argparse
import resource
import time

import torch

from modeconn.align import match, permutation_spec
from modeconn.align.groups import probe_module
from modeconn.models import build_model


def peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--arch", choices=("resnet20", "vit"), default="resnet20")
    args = parser.parse_args()
    device = torch.device(args.device)
    shape = (3, 32, 32) if args.arch == "resnet20" else (1, 28, 28)
    nets = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        nets.append(build_model(args.arch, None, shape, 10).to(device).eval())
    spec = permutation_spec(nets[0], shape)
    a, b = (dict(n.state_dict()) for n in nets)
    x = torch.rand(args.samples, *shape, generator=torch.Generator().manual_seed(0)).to(device)
    print(f"{args.arch}: {len(spec.groups)} permutation groups, {spec.units} units; device {device}")

    per_sample = None
    if spec.probes_on == "nodes":
        with torch.no_grad():
            features = probe_module(nets[0], spec)(x[:1])
        per_sample = sum(f[0].numel() for f in features.values()) * 4 * 2  # float32, both nets
    base = peak_mb(device)

    rows = []
    for method in ("activation", "weight"):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        _, info = match(method, nets[0], spec, a, b, x=x, samples=args.samples, batch_size=args.batch_size)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        rows.append((method, time.perf_counter() - start, peak_mb(device), info))
    for method, seconds, peak, info in rows:
        print(f"{method:10s} {seconds:7.2f} s   peak memory {peak:8.1f} MB   {info}")
    streaming = rows[0][2] - (0 if device.type == "cuda" else base)
    if per_sample is None:
        print(f"weight matching / activation matching time: {rows[1][1] / rows[0][1]:.3f}")
        return
    materialised = per_sample * args.samples / 2**20
    print(f"materialising every probe's features for {args.samples} inputs would hold {materialised:.0f} MB; "
          f"the streaming pass added {max(streaming, 0):.0f} MB (ratio {materialised / max(streaming, 1):.1f}x)")
    print(f"weight matching / activation matching time: {rows[1][1] / rows[0][1]:.3f}")


if __name__ == "__main__":
    main()
