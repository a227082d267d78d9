"""The 28x28 grayscale family: Fashion-MNIST (IDX files) and MNIST (torchvision).

Fashion-MNIST is read with our own IDX reader so Debian's packaged copy
(``apt-get install dataset-fashion-mnist`` -> /usr/share/datasets/fashion-mnist)
works offline; MNIST goes through torchvision's loader unchanged.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base import Dataset, DatasetNotFound, cfg_get, finish, one_line, standardise, torchvision_splits
from .cache import data_home
from .idx import read_idx

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
# Fixed per-dataset pixel statistics (of the 60k train images, after /255).
FASHION_MNIST_MEAN, FASHION_MNIST_STD = 0.2860, 0.3530
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def _find_idx(folders: list[Path]) -> dict[str, Path] | None:
    """The four IDX files (plain or .gz) from the first folder holding all of them."""
    for folder in folders:
        found = {}
        for key, stem in IDX_FILES.items():
            for name in (stem, stem + ".gz"):
                if (folder / name).is_file():
                    found[key] = folder / name
                    break
        if len(found) == len(IDX_FILES):
            return found
    return None


def _to_tensors(arrays: Mapping[str, np.ndarray], mean: float, std: float) -> dict[str, torch.Tensor]:
    out = {}
    for split in ("train", "test"):
        x = torch.from_numpy(arrays[f"x_{split}"]).unsqueeze(1).to(torch.float32) / 255.0
        out[f"x_{split}"] = standardise(x, mean, std)
        out[f"y_{split}"] = torch.as_tensor(np.asarray(arrays[f"y_{split}"]), dtype=torch.int64)
    return out


def load_fashion_mnist(cfg: Mapping[str, Any]) -> Dataset:
    """Fashion-MNIST, shape (1, 28, 28), from IDX files.

    Looks in ``dataset.root`` (default: Debian's /usr/share/datasets/fashion-mnist,
    then ``$MODECONN_HOME/data``), accepting plain or .gz files either directly in
    the folder or in torchvision's ``FashionMNIST/raw/`` layout. With
    ``dataset.download=true`` and nothing found, torchvision downloads into the
    root (default ``$MODECONN_HOME/data``). Normalisation: fixed mean/std
    (0.2860, 0.3530) after scaling to [0, 1].
    """
    root = cfg_get(cfg, "root")
    roots = [Path(root).expanduser()] if root else [DEBIAN_FASHION_MNIST, data_home()]
    folders = [f for r in roots for f in (r, r / "FashionMNIST" / "raw")]
    files = _find_idx(folders)
    if files is None and cfg_get(cfg, "download", False):
        from torchvision.datasets import FashionMNIST

        target = roots[0] if root else data_home()
        try:
            FashionMNIST(str(target), train=True, download=True)
        except RuntimeError as e:
            raise DatasetNotFound(f"fashion_mnist: download into {target} failed: {one_line(e)}") from e
        files = _find_idx([target / "FashionMNIST" / "raw"])
    if files is None:
        looked = " or ".join(str(r) for r in roots)
        need = ", ".join(f"{s}.gz" for s in IDX_FILES.values())
        raise DatasetNotFound(
            f"fashion_mnist: no IDX files in {looked} (need {need}, plain or gzipped, "
            f"or torchvision's FashionMNIST/raw/ layout); install Debian's dataset-fashion-mnist "
            f"(apt-get install dataset-fashion-mnist), set dataset.root=DIR to a folder with them, "
            f"or set dataset.download=true"
        )
    arrays = {key: read_idx(path) for key, path in files.items()}
    t = _to_tensors(arrays, FASHION_MNIST_MEAN, FASHION_MNIST_STD)
    return finish("fashion_mnist", cfg, t["x_train"], t["y_train"], t["x_test"], t["y_test"], num_classes=10)


def load_mnist(cfg: Mapping[str, Any]) -> Dataset:
    """MNIST, shape (1, 28, 28), via ``torchvision.datasets.MNIST``.

    Root: ``dataset.root`` or ``$MODECONN_HOME/data`` (torchvision reads
    ``<root>/MNIST/raw/``); ``dataset.download=true`` lets torchvision fetch it.
    Normalisation: fixed mean/std (0.1307, 0.3081) after scaling to [0, 1].
    """
    from torchvision.datasets import MNIST

    root = Path(cfg_get(cfg, "root") or data_home()).expanduser()
    download = bool(cfg_get(cfg, "download", False))
    arrays = {}
    remedy = (f"no MNIST in {root / 'MNIST' / 'raw'} ({{why}}); set dataset.download=true to fetch it there, "
              f"or set dataset.root=DIR to a folder containing MNIST/raw/{IDX_FILES['x_train']} etc.")
    for split, ds in zip(("train", "test"), torchvision_splits(MNIST, "mnist", root, download, "files missing", remedy)):
        arrays[f"x_{split}"], arrays[f"y_{split}"] = ds.data.numpy(), ds.targets.numpy()
    t = _to_tensors(arrays, MNIST_MEAN, MNIST_STD)
    return finish("mnist", cfg, t["x_train"], t["y_train"], t["x_test"], t["y_test"], num_classes=10)

