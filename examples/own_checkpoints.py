"""Two networks trained elsewhere, connected with modeconn's Python API.

Part 1 stands in for "elsewhere": it trains two small MLPs on scikit-learn's 8x8 digits with a
plain PyTorch loop (different seeds) and saves them as files, one as .safetensors and one as a
.pt checkpoint whose weights sit under a "model." prefix. Part 2 uses only the modeconn API
on those files: the straight line between them, the line after permutation alignment, and a
trained Bezier curve, each measured with the papers' protocol (61 points).

    python examples/own_checkpoints.py [--out DIR] [--epochs 40] [--curve-epochs 20]

Prints the test-error barriers (measured here: 27.64 % plain, 0.97 % aligned, 0.69 % on the curve;
~30 s on a 2-core CPU) and writes path.png and profile.json to --out.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

import modeconn as mc


def digits() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """sklearn's digits as standardised (N, 64) tensors, a fixed 80/20 split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.data, dtype=torch.float32)
    y = torch.tensor(bunch.target, dtype=torch.int64)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    cut = int(0.8 * len(x))
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def make_net() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10))


def train_elsewhere(seed: int, x: torch.Tensor, y: torch.Tensor, epochs: int) -> nn.Module:
    """An ordinary training loop, nothing of modeconn's."""
    torch.manual_seed(seed)
    net = make_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            F.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    return net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="where to write path.png and profile.json")
    parser.add_argument("--epochs", type=int, default=40, help="epochs of each network's own training")
    parser.add_argument("--curve-epochs", type=int, default=20, help="epochs of the Bezier curve's training")
    args = parser.parse_args()
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    train, test = digits()
    files = Path(tempfile.mkdtemp(prefix="own_checkpoints-"))
    out = args.out or files
    out.mkdir(parents=True, exist_ok=True)

    # ---- 1. elsewhere: two networks, two files
    net_a, net_b = (train_elsewhere(seed, *train, args.epochs) for seed in (0, 1))
    save_file(net_a.state_dict(), str(files / "a.safetensors"))
    torch.save({"epoch": args.epochs, "model": net_b.state_dict()}, files / "b.pt")

    # ---- 2. modeconn's API on the files
    net = make_net()                                        # the architecture; its own weights are unused
    a = mc.load_weights(net, files / "a.safetensors")
    b = mc.load_weights(net, files / "b.pt")                # the "model." prefix is found and stripped
    plain = mc.evaluate(mc.linear(net, a, b), net, train=train, test=test, progress=False)
    b_aligned, report = mc.align_weights(net, a, b, method="weight", data=train)
    aligned = mc.evaluate(mc.linear(net, a, b_aligned), net, train=train, test=test, alignment=report,
                          progress=False)
    curve = mc.bezier(net, a, b_aligned, num_bends=3)
    mc.train_path(curve, net, torch.utils.data.TensorDataset(*train), epochs=args.curve_epochs, lr=0.05,
                  progress=False)
    bent = mc.evaluate(curve, net, train=train, test=test, alignment=report, progress=False)

    print(f"endpoints: test error {plain.summary['test_err']['start']:.2f} % and {plain.summary['test_err']['end']:.2f} %")
    print(f"alignment: {report['units']} units, {100 * report['fraction_in_place']:.1f} % left in place, "
          f"largest logit change {report['max_logit_change']:.1e}")
    for name, profile in (("straight line", plain), ("aligned line", aligned), ("aligned Bezier curve", bent)):
        print(f"{name:<22} test-error barrier {profile.summary['barrier']['test_err']:6.2f} %   "
              f"train-loss barrier {profile.summary['barrier']['train_loss']:.4f}")
    bent.plot(out / "path.png", title="aligned Bezier curve between two digits MLPs")
    bent.to_json(out / "profile.json")
    print(f"wrote {out / 'path.png'} and {out / 'profile.json'}")


if __name__ == "__main__":
    main()
