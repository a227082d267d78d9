"""CIFAR-10 / CIFAR-100 through torchvision's own loaders (python pickle batches).

Only the tensor conversion and normalisation are ours; file discovery,
integrity checks and download are torchvision's.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base import Dataset, cfg_get, finish, standardise, torchvision_splits
from .cache import data_home

# Fixed per-channel statistics of each train set (pixels in [0, 1]).
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)


def _load_cifar(name: str, cls_name: str, num_classes: int, mean, std, cfg: Mapping[str, Any]) -> Dataset:
    import torchvision.datasets as tvd

    cls = getattr(tvd, cls_name)
    root = Path(cfg_get(cfg, "root") or data_home()).expanduser()
    download = bool(cfg_get(cfg, "download", False))
    tensors = {}
    remedy = (f"no {cls.base_folder}/ in {root} ({{why}}); set dataset.download=true to fetch it there, "
              f"or set dataset.root=DIR to a folder containing {cls.base_folder}/")
    for split, ds in zip(("train", "test"), torchvision_splits(cls, name, root, download, "missing or corrupted", remedy)):
        x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).to(torch.float32) / 255.0
        tensors[f"x_{split}"] = standardise(x, mean, std)
        tensors[f"y_{split}"] = torch.as_tensor(ds.targets, dtype=torch.int64)
    t = tensors
    return finish(name, cfg, t["x_train"], t["y_train"], t["x_test"], t["y_test"],
                  num_classes=num_classes, augment="crop_flip")


def load_cifar10(cfg: Mapping[str, Any]) -> Dataset:
    """CIFAR-10, shape (3, 32, 32), augment "crop_flip"; root ``dataset.root`` or
    ``$MODECONN_HOME/data``. Normalisation: fixed per-channel train-set mean/std."""
    return _load_cifar("cifar10", "CIFAR10", 10, CIFAR10_MEAN, CIFAR10_STD, cfg)


def load_cifar100(cfg: Mapping[str, Any]) -> Dataset:
    """CIFAR-100 (fine labels), shape (3, 32, 32), augment "crop_flip"; root as for
    CIFAR-10. Normalisation: fixed per-channel train-set mean/std."""
    return _load_cifar("cifar100", "CIFAR100", 100, CIFAR100_MEAN, CIFAR100_STD, cfg)
