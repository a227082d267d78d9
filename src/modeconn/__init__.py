"""modeconn: mode connectivity between trained networks, from the command line or from Python.

The command line (``modeconn``, ``python -m modeconn``) runs one configured experiment; the
Python API below works on your own ``nn.Module`` and weight files with the same code::

    import modeconn as mc
    a, b = mc.load_weights(net, "a.safetensors"), mc.load_weights(net, "b.pt")
    b_aligned, report = mc.align_weights(net, a, b, method="weight", data=train)
    path = mc.bezier(net, a, b_aligned, num_bends=3)         # mc.linear, mc.polychain, mc.simplex
    mc.train_path(path, net, train, epochs=10)
    profile = mc.evaluate(path, net, train=train, test=test, alignment=report)
    profile.summary["barrier"]["test_err"]; profile.plot("path.png"); profile.to_json("profile.json")

See :mod:`modeconn.api`. Names are imported on first use, so ``import modeconn`` stays cheap
for tools that need only a submodule.
"""
from __future__ import annotations

import importlib

_API = ("load_weights", "align_weights", "linear", "bezier", "polychain", "simplex", "train_path", "evaluate",
        "evaluate_at", "Profile", "as_dataset", "image_folder", "save_json")
_OTHER = {"CheckpointError": "modeconn.checkpoints", "file_sha256": "modeconn.checkpoints", "UserError": "modeconn.errors"}

__all__ = [*_API, *_OTHER]


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module("modeconn.api"), name)
    if name in _OTHER:
        return getattr(importlib.import_module(_OTHER[name]), name)
    raise AttributeError(f"module 'modeconn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
