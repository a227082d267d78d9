"""Freed weight-sized memory stays in the process during training (src/modeconn/heap.py)."""
import subprocess
import sys

import pytest
import torch

from modeconn.data import TensorLoader
from modeconn.heap import hold_freed_memory
from modeconn.models import build_model
from modeconn.training import fit as fit_module
from modeconn.training.classifier import ClassifierModule

# Ten SPRO steps (the shared path trainer's step, five points a step) on the 670k-parameter MLP:
# each allocates and frees a few weight-sized tensors, which glibc's default trims back to the
# operating system, to fault them in again the next step (~6,000 page faults a step).
SPRO_STEPS = """
import resource, sys, torch
from modeconn.data import TensorLoader
from modeconn.heap import hold_freed_memory
from modeconn.models import build_model
from modeconn.paths import ParameterSpace
from modeconn.paths.simplex import SimplicialComplexPath
from modeconn.training.classifier import sgd
from modeconn.training.path_trainer import PathModule
if sys.argv[1] == "hold":
    assert hold_freed_memory()
torch.manual_seed(0)
net = build_model("mlp", {}, (1, 28, 28), 10)
space = ParameterSpace(net)
a = space.flatten(net.state_dict())
simplex = SimplicialComplexPath.grown(space, [a, a + 0.01 * torch.randn(space.dim)], [[0, 1]], join=[0], lmbda=0.1)
x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
module = PathModule(simplex, net, TensorLoader(x, y, 32), samples=5, lr=0.01, momentum=0.9, wd=5e-4, total_steps=1)
module.log = lambda *a, **k: None
opt = sgd([simplex.free], lr=0.01, momentum=0.9)
def step():
    opt.zero_grad(set_to_none=True)
    module.training_step((x, y), 0).backward()
    opt.step()
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", SPRO_STEPS, mode], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_training_steps_reuse_held_memory_instead_of_faulting_it_in_again():
    if not hold_freed_memory():
        pytest.skip("not glibc")
    trimmed, held = page_faults("default"), page_faults("hold")
    assert trimmed > 10 * 1000          # ten steps: ~60,000 measured
    assert held < trimmed / 20          # 0 measured



def test_every_fit_holds_the_heap_before_training(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(fit_module, "hold_freed_memory", lambda: calls.append("held"))
    x, y = torch.randn(64, 1, 40), torch.randint(0, 10, (64,))
    model = build_model("mlp", {"width": 16, "depth": 1}, (1, 40), 10)
    loader = TensorLoader(x, y, 32)
    module = ClassifierModule(model, loader, lr=0.05, momentum=0.9, wd=5e-4, total_steps=len(loader), seed=0)
    fit_module.fit(module, epochs=1, work_dir=tmp_path, trainer_cfg={"progress": False}, identity={"test": "heap"},
                   name="heap test")
    assert calls == ["held"]
