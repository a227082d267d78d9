"""Your own networks end to end: library and custom classes, endpoints from files, a folder of images."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
import torchvision
from safetensors.torch import load_file, save_file
from torch import nn

import modeconn as mc
from conftest import REPO, compose_config
from modeconn.app import run
from test_folder_data import make_folder


class TinyConv(nn.Module):
    """A custom class for arch=custom: conv-BN-ReLU, a residual conv, global pool, linear head."""

    def __init__(self, num_classes: int, in_channels: int, width: int = 6):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width))
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        h = self.stem(x)
        return self.head(F.relu(h + self.block(h)).mean((2, 3)))


def test_a_custom_class_trains_aligns_and_reloads_from_its_own_files(tmp_path):
    """arch=custom on dataset=folder: endpoints trained into the store, a Bezier curve between the
    activation-aligned pair; then the same endpoints given as files reproduce every number."""
    root = make_folder(tmp_path / "imgs", classes=("a", "b", "c", "d"), train=4, test=2)
    common = ("arch=custom", f"arch._target_={__name__}.TinyConv", "+arch.params.width=4", "dataset=folder",
              f"dataset.root={root}", "dataset.size=[8,8]", "method=bezier", "method.points=5", "align=activation",
              "trainer=smoke", "logger=none", "trainer.progress=false", f"store_dir={tmp_path / 'store'}")
    trained = run(compose_config(*common, f"output_dir={tmp_path / 'run1'}"))
    assert trained["status"] == "ok" and trained["arch"] == "custom"
    assert trained["alignment"]["max_logit_change"] < 1e-4 and trained["alignment"]["units"] == 4   # one residual stream
    files = [tmp_path / "store" / "endpoints" / e["key"] / "weights.safetensors" for e in trained["endpoints"]]
    store_before = sorted(p.name for p in (tmp_path / "store" / "endpoints").iterdir())
    listed = ",".join(map(str, files))
    loaded = run(compose_config(*common, f"output_dir={tmp_path / 'run2'}", f"endpoint.checkpoints=[{listed}]"))
    assert sorted(p.name for p in (tmp_path / "store" / "endpoints").iterdir()) == store_before
    for t, f in zip(trained["endpoints"], loaded["endpoints"]):
        assert f["file"].endswith("weights.safetensors") and len(f["sha256"]) == 64
        assert {k: f[k] for k in ("train_loss", "test_nll", "test_err")} == \
            pytest.approx({k: t[k] for k in ("train_loss", "test_nll", "test_err")}, abs=1e-6)
    assert loaded["path"]["test_err"] == pytest.approx(trained["path"]["test_err"], abs=1e-6)
    # the API on the same files and folder: the run's path, summary and alignment, number for number
    net = TinyConv(num_classes=4, in_channels=3, width=4)
    a, b = (mc.load_weights(net, f) for f in files)
    train, test = mc.image_folder(root, size=8)
    b_aligned, report = mc.align_weights(net, a, b, method="activation", data=train)
    curve = mc.bezier(net, a, b_aligned, points=5)
    mc.train_path(curve, net, train, epochs=2, lr=0.05, limit_batches=8, progress=False)
    profile = mc.evaluate(curve, net, train=train, test=test, alignment=report, progress=False)
    for k, values in loaded["path"].items():
        assert profile.path[k] == pytest.approx(values, abs=1e-5), k
    for k, value in loaded["summary"]["barrier"].items():
        assert profile.summary["barrier"][k] == pytest.approx(value, abs=1e-5), k
    assert report["fraction_in_place"] == loaded["alignment"]["fraction_in_place"]


# --------------------------------------------------------------------------- the resnet18


@pytest.fixture(scope="module")
def resnet_run(tmp_path_factory):
    """torchvision's resnet18 (4 classes, 16x16 inputs), two seeds saved as .safetensors and as a
    Lightning-style .pt, connected by the command line on a generated ImageFolder."""
    tmp = tmp_path_factory.mktemp("resnet")
    root = make_folder(tmp / "imgs", classes=("a", "b", "c", "d"), train=6, test=3, size=(20, 24))
    files = [tmp / "a.safetensors", tmp / "b.pt"]
    states = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        states.append(torchvision.models.resnet18(num_classes=4).state_dict())
    save_file(states[0], str(files[0]))
    torch.save({"epoch": 9, "state_dict": {f"model.{k}": v for k, v in states[1].items()}}, files[1])
    home, run_dir = tmp / "home", tmp / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "modeconn", "arch=torchvision", "arch.name=resnet18",
         f"endpoint.checkpoints=[{files[0]},{files[1]}]", "dataset=folder", f"dataset.root={root}",
         "dataset.size=16", "method=linear", "align=weight", "trainer=smoke", "logger=none",
         f"hydra.run.dir={run_dir}"],
        capture_output=True, text=True, cwd=REPO, timeout=600,
        env={**os.environ, "MODECONN_HOME": str(home), "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO / "src"),
             "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"root": root, "files": files, "home": home, "results": json.loads((run_dir / "results.json").read_text())}


def _independent_metrics(file, x_train, x_test, y_test) -> dict:
    """The file's network measured with plain torch: BN statistics from one train-mode pass over
    the (24) training images, then test NLL and error in eval mode."""
    state = load_file(str(file)) if str(file).endswith(".safetensors") else \
        {k.removeprefix("model."): v for k, v in torch.load(file, weights_only=True)["state_dict"].items()}
    net = torchvision.models.resnet18(num_classes=4)
    net.load_state_dict(state)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None
        net.train()(x_train)
        logits = net.eval()(x_test)
    return {"test_nll": F.cross_entropy(logits, y_test).item(),
            "test_err": 100.0 * (logits.argmax(1) != y_test).float().mean().item()}


@pytest.mark.slow     # resnet18 at 61 points by the command line: ~1 min on this loaded 2-core machine
def test_resnet18_from_files_on_a_folder_by_the_command_line_and_the_api(resnet_run):
    r = resnet_run["results"]
    assert r["status"] == "ok" and r["arch"] == "resnet18" and r["dataset"] == "folder"
    assert len(r["path"]["t"]) == 61 and all(len(v) == 61 for v in r["path"].values())
    assert not resnet_run["home"].exists()                 # the store is not touched for files
    (x_train, y_train), (x_test, y_test) = mc.image_folder(resnet_run["root"], size=16)
    for endpoint, file in zip(r["endpoints"], resnet_run["files"]):
        assert endpoint["file"] == str(file) and endpoint["sha256"] == mc.file_sha256(file)
        assert {k: endpoint[k] for k in ("test_nll", "test_err")} == \
            pytest.approx(_independent_metrics(file, x_train, x_test, y_test), abs=1e-4)
    # alignment leaves B's function alone: logits, and the whole protocol at t = 1
    assert r["alignment"]["max_logit_change"] < 1e-4
    for k in ("train_loss", "test_nll", "test_err"):
        assert r["path"][k][-1] == pytest.approx(r["endpoints"][1][k], abs=1e-4)
    # the API on the same files gives the same numbers (3 of the 61 points: resnet18 is slow here)
    net = torchvision.models.resnet18(num_classes=4)
    a, b = (mc.load_weights(net, f) for f in resnet_run["files"])
    b_aligned, report = mc.align_weights(net, a, b, method="weight", data=(x_train, y_train))
    assert report["fraction_in_place"] == pytest.approx(r["alignment"]["fraction_in_place"])
    points = mc.evaluate_at(mc.linear(net, a, b_aligned), net, torch.tensor([[0.0], [0.5], [1.0]]),
                            train=(x_train, y_train), test=(x_test, y_test))
    for point, i in zip(points, (0, 30, 60)):
        assert point == pytest.approx({k: r["path"][k][i] for k in point}, abs=1e-5)
