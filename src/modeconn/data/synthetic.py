"""Generated datasets that need no files: MNIST-1D and sklearn's digits.

Both are small enough for CPU-scale reproductions of the whole pipeline.
"""
from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from .base import Dataset, finish
from .cache import cached_npz, config_digest, data_home

DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


def _generate_mnist1d() -> dict[str, np.ndarray]:
    """Run mnist1d's own generator (offline) with its default arguments.

    ``make_dataset`` reseeds Python's and NumPy's global RNGs; their states are
    restored afterwards so loading data never perturbs the caller's randomness.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        d = make_dataset(get_dataset_args())
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return {"x": d["x"], "y": d["y"], "x_test": d["x_test"], "y_test": d["y_test"]}


def load_mnist1d(cfg: Mapping[str, Any]) -> Dataset:
    """MNIST-1D: 4000 train / 1000 test signals of length 40, 10 classes, shape (1, 40).

    Regenerated with mnist1d's defaults (seed 42) rather than downloaded, and
    cached as ``$MODECONN_HOME/data/mnist1d-<hash of the args>.npz`` because
    generation takes seconds. Normalisation: mnist1d already standardises the
    signals with one global mean/std over the generated set; nothing is added.
    """
    from mnist1d.data import get_dataset_args

    args = get_dataset_args(as_dict=True)
    args.pop("url", None)
    path = data_home() / f"mnist1d-{config_digest(args)}.npz"
    d = cached_npz(path, _generate_mnist1d)

    def x(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).unsqueeze(1)

    def y(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(a, dtype=np.int64))

    return finish("mnist1d", cfg, x(d["x"]), y(d["y"]), x(d["x_test"]), y(d["y_test"]), num_classes=10)


def _stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train/test indices with ``round(test_fraction * n_c)`` test items per class."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(test_fraction * len(idx)))
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def load_digits(cfg: Mapping[str, Any]) -> Dataset:
    """sklearn's 8x8 digits (1797 images, bundled with sklearn): shape (1, 8, 8).

    A fixed stratified split (20% of each class, seed 0: 1438 train / 359 test).
    Normalisation: pixels /16 into [0, 1], then one scalar mean/std computed on
    the train split (per-pixel std is zero at the always-blank border).
    """
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = bunch.images.astype(np.float32) / 16.0
    labels = bunch.target.astype(np.int64)
    tr, te = _stratified_split(labels, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)
    x = torch.from_numpy(images).unsqueeze(1)
    y = torch.from_numpy(labels)
    mean, std = x[tr].mean(), x[tr].std()
    x = (x - mean) / std
    return finish("digits", cfg, x[tr], y[tr], x[te], y[te], num_classes=10)
