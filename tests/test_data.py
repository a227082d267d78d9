"""Datasets (all six sources, from files the tests write), the loader and augmentation.

No network: torchvision-backed sources read small files in torchvision's own
layouts; only the mnist1d generator runs for real (once per session, once more
for the determinism check).
"""
from __future__ import annotations

import gzip
import os
import pickle
import random
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import modeconn.data.synthetic as synthetic
from modeconn.data import DATASETS, Dataset, DatasetNotFound, TensorLoader, load_dataset
from modeconn.data.augment import crop_flip
from modeconn.data.cache import cached_npz, data_home
from modeconn.data.idx import read_idx, write_idx
from modeconn.data.mnist import DEBIAN_FASHION_MNIST, FASHION_MNIST_MEAN, FASHION_MNIST_STD, MNIST_MEAN, MNIST_STD

CONF = Path(__file__).resolve().parents[1] / "conf" / "dataset"
EPOCHS = {"mnist1d": 30, "digits": 30, "fashion_mnist": 20, "mnist": 20, "cifar10": 200, "cifar100": 200}


# ---------------------------------------------------------------- helpers
def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding written independently of modeconn.data.idx (uint8 only)."""
    assert array.dtype == np.uint8
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def fake_mnist_arrays(n_train=12, n_test=6, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_idx_folder(folder: Path, arrays, gz: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, a in arrays.items():
        if gz:
            with gzip.open(folder / f"{stem}.gz", "wb") as f:
                f.write(idx_bytes(a))
        else:
            (folder / stem).write_bytes(idx_bytes(a))


def assert_one_line_remedy(err: DatasetNotFound, path: str) -> None:
    msg = str(err)
    assert isinstance(err, FileNotFoundError)
    assert "\n" not in msg and path in msg
    assert "dataset.root" in msg and "dataset.download=true" in msg


# ---------------------------------------------------------------- configs
@pytest.mark.parametrize("name", sorted(EPOCHS))
def test_dataset_configs(name):
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    assert set(cfg) == {"name", "root", "download", "train_size", "test_size", "epochs"}
    assert cfg.name == name and name in DATASETS
    assert cfg.root is None and cfg.download is False and cfg.train_size is None and cfg.test_size is None
    assert cfg.epochs == EPOCHS[name]


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        load_dataset({"name": "nope"})


# ---------------------------------------------------------------- mnist1d
def test_mnist1d_shapes_and_cache():
    py_state, np_state = random.getstate(), np.random.get_state()
    d = load_dataset(OmegaConf.load(CONF / "mnist1d.yaml"))
    assert random.getstate() == py_state  # mnist1d reseeds globals; we restore them
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    assert isinstance(d, Dataset) and d.name == "mnist1d" and d.augment is None
    assert d.x_train.shape == (4000, 1, 40) and d.x_test.shape == (1000, 1, 40)
    assert d.input_shape == (1, 40) and d.num_classes == 10
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert set(d.y_train.tolist()) == set(range(10))
    assert abs(d.x_train.mean().item()) < 0.1 and abs(d.x_train.std().item() - 1) < 0.1
    assert len(list(data_home().glob("mnist1d-*.npz"))) == 1
    again = load_dataset({"name": "mnist1d"})
    assert torch.equal(d.x_train, again.x_train) and torch.equal(d.y_test, again.y_test)


def test_mnist1d_regeneration_is_deterministic():
    load_dataset({"name": "mnist1d"})
    (cache,) = data_home().glob("mnist1d-*.npz")
    with np.load(cache) as z:
        cached = {k: z[k] for k in z.files}
    fresh = synthetic._generate_mnist1d()
    assert cached.keys() == fresh.keys()
    for k in cached:
        np.testing.assert_array_equal(cached[k], fresh[k])


def test_mnist1d_cache_is_reused(tmp_path, monkeypatch):
    load_dataset({"name": "mnist1d"})
    (cache,) = data_home().glob("mnist1d-*.npz")
    monkeypatch.setenv("MODECONN_HOME", str(tmp_path))
    (tmp_path / "data").mkdir()
    shutil.copy(cache, tmp_path / "data" / cache.name)

    def boom():
        raise AssertionError("regenerated despite a cached npz")

    monkeypatch.setattr(synthetic, "_generate_mnist1d", boom)
    d = load_dataset({"name": "mnist1d", "train_size": 100, "test_size": 50})
    assert len(d.x_train) == 100 and len(d.x_test) == 50


def test_cached_npz_generates_once_atomically(tmp_path):
    calls = []

    def make():
        calls.append(1)
        return {"a": np.arange(5)}

    path = tmp_path / "sub" / "x.npz"
    assert np.array_equal(cached_npz(path, make)["a"], np.arange(5))
    assert np.array_equal(cached_npz(path, make)["a"], np.arange(5))
    assert len(calls) == 1 and os.listdir(path.parent) == ["x.npz"]  # no temp files left
    path.write_bytes(b"garbage")  # a corrupt cache is regenerated
    assert np.array_equal(cached_npz(path, make)["a"], np.arange(5)) and len(calls) == 2


# ---------------------------------------------------------------- digits
def test_digits():
    d = load_dataset(OmegaConf.load(CONF / "digits.yaml"))
    assert d.input_shape == (1, 8, 8) and d.num_classes == 10
    assert len(d.x_train) + len(d.x_test) == 1797 and 350 <= len(d.x_test) <= 370
    assert torch.bincount(d.y_test, minlength=10).min() >= 30  # stratified
    assert abs(d.x_train.mean().item()) < 1e-4 and abs(d.x_train.std().item() - 1) < 1e-4
    again = load_dataset({"name": "digits"})
    assert torch.equal(d.x_train, again.x_train) and torch.equal(d.y_test, again.y_test)


def test_train_test_size_subsets_are_fixed():
    full = load_dataset({"name": "digits"})
    a = load_dataset({"name": "digits", "train_size": 200, "test_size": 50})
    b = load_dataset({"name": "digits", "train_size": 200, "test_size": 50})
    assert len(a.x_train) == 200 and len(a.x_test) == 50
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    rows = {tuple(r.tolist()) for r in full.x_train.flatten(1)}
    assert all(tuple(r.tolist()) in rows for r in a.x_train.flatten(1))
    # same normalisation as the full split: subsetting never changes the constants
    assert torch.equal(a.x_train[0], full.x_train[(full.x_train == a.x_train[0]).flatten(1).all(1)][0])


# ---------------------------------------------------------------- IDX / Fashion-MNIST / MNIST
def test_idx_roundtrip(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, (3, 4, 5), dtype=np.uint8)
    (tmp_path / "a").write_bytes(idx_bytes(a))
    assert np.array_equal(read_idx(tmp_path / "a"), a)
    write_idx(tmp_path / "b.gz", a.astype(np.int32))
    assert np.array_equal(read_idx(tmp_path / "b.gz"), a.astype(np.int32))
    (tmp_path / "c").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x09abc")
    with pytest.raises(ValueError, match="IDX header"):
        read_idx(tmp_path / "c")


@pytest.mark.parametrize("layout", ["debian_gz", "torchvision_raw"])
def test_fashion_mnist_from_idx(tmp_path, layout):
    arrays = fake_mnist_arrays()
    if layout == "debian_gz":
        write_idx_folder(tmp_path, arrays, gz=True)
    else:
        write_idx_folder(tmp_path / "FashionMNIST" / "raw", arrays, gz=False)
    d = load_dataset({"name": "fashion_mnist", "root": str(tmp_path)})
    assert d.x_train.shape == (12, 1, 28, 28) and d.x_test.shape == (6, 1, 28, 28)
    assert d.input_shape == (1, 28, 28) and d.num_classes == 10 and d.augment is None
    expect = (torch.from_numpy(arrays["train-images-idx3-ubyte"]).float() / 255 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD
    torch.testing.assert_close(d.x_train[:, 0], expect)
    assert d.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


@pytest.mark.skipif(not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_debian_package():
    d = load_dataset({"name": "fashion_mnist"})
    assert d.x_train.shape == (60000, 1, 28, 28) and d.x_test.shape == (10000, 1, 28, 28)
    assert torch.bincount(d.y_train).tolist() == [6000] * 10
    assert abs(d.x_train.mean().item()) < 0.01 and abs(d.x_train.std().item() - 1) < 0.01


def test_fashion_mnist_missing(tmp_path):
    missing = str(tmp_path / "nonexistent" / "fm")
    with pytest.raises(DatasetNotFound) as e:
        load_dataset({"name": "fashion_mnist", "root": missing})
    assert_one_line_remedy(e.value, missing)
    assert "train-images-idx3-ubyte.gz" in str(e.value) and "apt-get install dataset-fashion-mnist" in str(e.value)


def test_mnist_from_torchvision_raw_layout(tmp_path):
    arrays = fake_mnist_arrays(seed=1)
    write_idx_folder(tmp_path / "MNIST" / "raw", arrays, gz=False)
    d = load_dataset({"name": "mnist", "root": str(tmp_path), "download": False})
    assert d.x_train.shape == (12, 1, 28, 28) and d.input_shape == (1, 28, 28)
    expect = (torch.from_numpy(arrays["t10k-images-idx3-ubyte"]).float() / 255 - MNIST_MEAN) / MNIST_STD
    torch.testing.assert_close(d.x_test[:, 0], expect)
    assert d.y_train.tolist() == arrays["train-labels-idx1-ubyte"].tolist()


def test_mnist_default_root_is_modeconn_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MODECONN_HOME", str(tmp_path))
    with pytest.raises(DatasetNotFound) as e:
        load_dataset({"name": "mnist", "root": None})
    assert_one_line_remedy(e.value, str(tmp_path / "data" / "MNIST" / "raw"))


# ---------------------------------------------------------------- CIFAR
def write_cifar(root: Path, name: str, rng) -> dict:
    """Tiny pickled batches in torchvision's layout (cifar-10-batches-py / cifar-100-python)."""
    def batch(n, label_key, classes):
        return {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                label_key: rng.integers(0, classes, n).tolist()}

    def dump(path, obj):
        path.write_bytes(pickle.dumps(obj))

    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        train = [batch(3, "labels", 10) for _ in range(5)]
        for i, b in enumerate(train, 1):
            dump(folder / f"data_batch_{i}", b)
        test = batch(4, "labels", 10)
        dump(folder / "test_batch", test)
        dump(folder / "batches.meta", {"label_names": [str(i) for i in range(10)]})
        key = "labels"
    else:
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True)
        train = [batch(7, "fine_labels", 100)]
        dump(folder / "train", train[0])
        test = batch(4, "fine_labels", 100)
        dump(folder / "test", test)
        dump(folder / "meta", {"fine_label_names": [str(i) for i in range(100)]})
        key = "fine_labels"
    return {"x_train": np.concatenate([b["data"] for b in train]), "y_train": sum((b[key] for b in train), []),
            "x_test": test["data"], "y_test": test[key]}


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_from_pickled_batches(tmp_path, monkeypatch, name):
    import torchvision.datasets.cifar as tv_cifar

    # torchvision md5-checks every batch (in _check_integrity) and the meta file (in
    # _load_meta, via the module's check_integrity): keep the existence check, skip md5.
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
    raw = write_cifar(tmp_path, name, np.random.default_rng(0))
    d = load_dataset({"name": name, "root": str(tmp_path)})
    n_train = len(raw["y_train"])
    assert d.x_train.shape == (n_train, 3, 32, 32) and d.x_test.shape == (4, 3, 32, 32)
    assert d.input_shape == (3, 32, 32) and d.augment == "crop_flip"
    assert d.num_classes == (10 if name == "cifar10" else 100)
    assert d.y_train.tolist() == raw["y_train"] and d.y_test.tolist() == raw["y_test"]
    mean = torch.tensor([0.4914, 0.4822, 0.4465] if name == "cifar10" else [0.5071, 0.4865, 0.4409])
    std = torch.tensor([0.2470, 0.2435, 0.2616] if name == "cifar10" else [0.2673, 0.2564, 0.2762])
    img = torch.from_numpy(raw["x_train"]).float().reshape(-1, 3, 32, 32) / 255
    torch.testing.assert_close(d.x_train, (img - mean[:, None, None]) / std[:, None, None])


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100"])
def test_torchvision_sources_missing(tmp_path, name):
    missing = str(tmp_path / "nothing-here")
    with pytest.raises(DatasetNotFound) as e:
        load_dataset(OmegaConf.merge(OmegaConf.load(CONF / f"{name}.yaml"), {"root": missing}))
    assert_one_line_remedy(e.value, missing)


def test_dataset_to_device():
    d = load_dataset({"name": "digits"}, device="cpu")
    moved = d.to("cpu")
    assert moved.x_train.device.type == "cpu" and moved.input_shape == d.input_shape
    assert "digits" in repr(d) and "tensor(" not in repr(d)


# ---------------------------------------------------------------- loader
def labelled(n=103):
    return torch.arange(n, dtype=torch.float32)[:, None] * torch.ones(1, 4), torch.arange(n)


def epoch_order(loader):
    xs, ys = zip(*loader)
    x, y = torch.cat(xs), torch.cat(ys)
    assert torch.equal(x[:, 0].long(), y)  # pairs stay together
    return y


def test_loader_visits_every_index_once():
    x, y = labelled()
    order = epoch_order(TensorLoader(x, y, 10))
    assert sorted(order.tolist()) == list(range(103)) and order.tolist() != list(range(103))


def test_loader_order_is_function_of_seed_and_epoch():
    x, y = labelled()

    def order(seed, epoch):
        loader = TensorLoader(x, y, 10, seed=seed)
        loader.set_epoch(epoch)
        return epoch_order(loader)

    assert torch.equal(order(3, 5), order(3, 5))
    assert not torch.equal(order(3, 5), order(3, 6))
    assert not torch.equal(order(3, 5), order(4, 5))


def test_loader_advances_epoch_after_full_pass_only():
    x, y = labelled()
    auto = TensorLoader(x, y, 10)
    first, second = epoch_order(auto), epoch_order(auto)
    manual = TensorLoader(x, y, 10)
    manual.set_epoch(1)
    assert torch.equal(second, epoch_order(manual)) and not torch.equal(first, second)
    partial = TensorLoader(x, y, 10)
    next(iter(partial))
    assert torch.equal(epoch_order(partial), first)  # an abandoned pass is not an epoch


def test_loader_len_drop_last_and_no_shuffle():
    x, y = labelled()
    keep, drop = TensorLoader(x, y, 10), TensorLoader(x, y, 10, drop_last=True)
    assert len(keep) == 11 and len(list(keep)) == 11 and [len(b) for b, _ in keep][-1] == 3
    assert len(drop) == 10 and len(list(drop)) == 10 and all(len(b) == 10 for b, _ in drop)
    assert epoch_order(TensorLoader(x, y, 10, shuffle=False)).tolist() == list(range(103))
    with pytest.raises(ValueError):
        TensorLoader(x, y, 10, augment="crop_flip")  # needs images
    with pytest.raises(ValueError):
        TensorLoader(x, y, 10, augment="mixup")


def all_crops(x, padding=4):
    """Every (dy, dx, flip) crop of each image, by per-sample slicing: (B, 2*(2p+1)^2, C, H, W)."""
    _, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    crops = [padded[:, :, dy:dy + h, dx:dx + w] for dy in range(2 * padding + 1) for dx in range(2 * padding + 1)]
    crops += [c.flip(-1) for c in crops]
    return torch.stack(crops, 1)


def test_loader_augmentation_is_a_crop_flip_and_resumable():
    x = torch.randn(40, 2, 6, 6)
    y = torch.arange(40)
    a = TensorLoader(x, y, 16, augment="crop_flip", seed=1)
    epochs = [[(xb.clone(), yb.clone()) for xb, yb in a] for _ in range(3)]
    for xb, yb in epochs[2]:
        assert xb.shape == (len(yb), 2, 6, 6)
        cands = all_crops(x[yb])
        assert (cands == xb[:, None]).flatten(2).all(2).any(1).all()
    assert not torch.equal(epochs[1][0][0], epochs[2][0][0])
    resumed = TensorLoader(x, y, 16, augment="crop_flip", seed=1)
    resumed.set_epoch(2)
    for (xa, ya), (xb, yb) in zip(epochs[2], resumed, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


# ---------------------------------------------------------------- augmentation
def test_crop_flip_identity_mirror_and_window():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 10, 12)
    centre = torch.full((8, 2), 4)
    no, yes = torch.zeros(8, dtype=torch.bool), torch.ones(8, dtype=torch.bool)
    out = crop_flip(x, centre, no)
    assert out.shape == x.shape and torch.equal(out, x)
    assert torch.equal(crop_flip(x, centre, yes), x.flip(-1))
    offsets = torch.randint(0, 9, (8, 2))
    flips = torch.rand(8) < 0.5
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    got = crop_flip(x, offsets, flips)
    for i in range(8):
        dy, dx = offsets[i].tolist()
        window = padded[i, :, dy:dy + 10, dx:dx + 12]
        assert torch.equal(got[i], window.flip(-1) if flips[i] else window)
    corner = crop_flip(x, torch.zeros(8, 2, dtype=torch.long), no)
    assert torch.equal(corner[:, :, :4], torch.zeros(8, 3, 4, 12)) and torch.equal(corner[:, :, 4:, 4:], x[:, :, :6, :8])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_loader_on_cuda_matches_cpu():
    x = torch.randn(50, 3, 8, 8)
    y = torch.arange(50)
    cpu = list(TensorLoader(x, y, 16, augment="crop_flip", seed=2))
    gpu = list(TensorLoader(x.cuda(), y.cuda(), 16, augment="crop_flip", seed=2))
    for (xc, yc), (xg, yg) in zip(cpu, gpu, strict=True):
        assert xg.is_cuda and torch.equal(xc, xg.cpu()) and torch.equal(yc, yg.cpu())
