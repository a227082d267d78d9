"""dataset=folder: an ImageFolder tree as tensors on the device, or streamed above the memory limit."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import compose_config
from modeconn.data import DatasetNotFound, TensorLoader, load_dataset
from modeconn.data.streamed import StreamedImages
from modeconn.evaluation.metrics import evaluate_point
from modeconn.models import build_model
from modeconn.training.endpoints import dataset_spec


def make_folder(root, classes=("cat", "dog", "eel"), train=5, test=2, size=(12, 10), seed=0, test_name="test"):
    """A tiny ImageFolder tree of random RGB PNGs; each class has one bright channel."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", train), (test_name, test)):
        for c, name in enumerate(classes):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                a = rng.integers(0, 120, (*size, 3), dtype=np.uint8)
                a[..., c % 3] += 120
                Image.fromarray(a).save(d / f"{i}.png")
    return root


def _cfg(root, **kw) -> dict:
    return {"name": "folder", "root": str(root), "size": [8, 8], "channels": 3, **kw}


def test_a_folder_loads_as_normalised_tensors_with_imagefolder_labels(tmp_path):
    import torchvision
    from torchvision.transforms import v2

    root = make_folder(tmp_path / "imgs")
    data = load_dataset(_cfg(root))
    assert (data.input_shape, data.num_classes, len(data.x_train), len(data.x_test)) == ((3, 8, 8), 3, 15, 6)
    assert isinstance(data.x_train, torch.Tensor)
    # independent: torchvision's ImageFolder with the same recipe, normalised by the training set's statistics
    recipe = v2.Compose([v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True), v2.Resize([8, 8], antialias=True)])
    ref = torchvision.datasets.ImageFolder(str(root / "train"), transform=recipe)
    x = torch.stack([ref[i][0] for i in range(len(ref))])
    mean, std = x.mean((0, 2, 3)), x.std((0, 2, 3), correction=0)
    assert torch.allclose(data.x_train, (x - mean[:, None, None]) / std[:, None, None], atol=1e-5)
    assert torch.equal(data.y_train, torch.tensor(ref.targets))
    # the training set is standardised per channel; the test set uses the same constants
    assert torch.allclose(data.x_train.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)
    grey = load_dataset(_cfg(root, channels=1, mean=[0.5], std=[0.25]))
    assert grey.input_shape == (1, 8, 8)


def test_streaming_above_the_memory_limit_gives_the_same_numbers(tmp_path):
    root = make_folder(tmp_path / "imgs")
    held = load_dataset(_cfg(root))
    streamed = load_dataset(_cfg(root, memory_limit_gb=1e-9))
    assert isinstance(streamed.x_train, StreamedImages) and streamed.x_train.shape == held.x_train.shape
    assert torch.allclose(streamed.x_train[:], held.x_train, atol=1e-6)
    idx = torch.tensor([4, 0, 11])
    assert torch.allclose(streamed.x_train[idx], held.x_train[idx], atol=1e-6)
    # the training loader's batches and the evaluation protocol read it the same way
    for (xa, ya), (xb, yb) in zip(TensorLoader(held.x_train, held.y_train, 4, seed=3),
                                  TensorLoader(streamed.x_train, streamed.y_train, 4, seed=3)):
        assert torch.allclose(xa, xb, atol=1e-6) and torch.equal(ya, yb)
    torch.manual_seed(0)
    net = build_model("convnet", {"channels": [4], "hidden": 0, "batchnorm": True}, (3, 8, 8), 3)
    params = dict(net.named_parameters())
    a = evaluate_point(net, params, held, wd=1e-3, batch_size=4, bn_batch_size=4).as_dict()
    b = evaluate_point(net, params, streamed, wd=1e-3, batch_size=4, bn_batch_size=4).as_dict()
    assert a == pytest.approx(b, abs=1e-5)


def test_subsets_val_fallback_and_bad_trees(tmp_path):
    root = make_folder(tmp_path / "imgs", test_name="val")
    data = load_dataset(_cfg(root, train_size=7))
    assert len(data.x_train) == 7 and len(data.x_test) == 6
    with pytest.raises(DatasetNotFound, match="dataset.root"):
        load_dataset({"name": "folder", "root": None})
    with pytest.raises(DatasetNotFound, match="no training split"):
        load_dataset(_cfg(tmp_path / "nowhere"))
    (root / "val" / "fox").mkdir()
    with pytest.raises(DatasetNotFound, match="fox"):
        load_dataset(_cfg(root))


def test_a_folder_is_known_by_its_path_and_file_list(tmp_path):
    root = make_folder(tmp_path / "imgs")
    cfg = compose_config("dataset=folder", f"dataset.root={root}")
    before = dataset_spec(cfg)
    assert before["source"]["root"] == str(root) and before["source"]["files"] == 21
    from modeconn.data import folder
    folder._identity.cache_clear()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "train" / "cat" / "new.png")
    after = dataset_spec(cfg)
    assert after["source"]["digest"] != before["source"]["digest"] and after["source"]["files"] == 22


def test_a_missing_folder_or_bad_recipe_is_refused_before_any_work(tmp_path):
    from modeconn import validate

    root = make_folder(tmp_path / "imgs")
    assert validate.problems(compose_config("dataset=folder", f"dataset.root={root}")) == []
    (missing,) = validate.problems(compose_config("dataset=folder", f"dataset.root={tmp_path / 'nowhere'}"))
    assert "no training split" in missing and "nowhere" in missing
    (channels,) = validate.problems(compose_config("dataset=folder", f"dataset.root={root}", "dataset.channels=2"))
    assert "dataset.channels=2" in channels


def test_the_api_reads_a_streamed_folder_with_the_same_numbers(tmp_path):
    import modeconn as mc

    root = make_folder(tmp_path / "imgs")
    torch.manual_seed(0)
    net = build_model("convnet", {"channels": [4], "hidden": 0, "batchnorm": True}, (3, 8, 8), 3)
    a = net.state_dict()
    torch.manual_seed(1)
    b = build_model("convnet", {"channels": [4], "hidden": 0, "batchnorm": True}, (3, 8, 8), 3).state_dict()
    profiles = []
    for limit in (4.0, 1e-9):
        train, test = mc.image_folder(root, size=8, memory_limit_gb=limit)
        aligned, _ = mc.align_weights(net, a, b, method="activation", data=train)
        profiles.append(mc.evaluate(mc.linear(net, a, aligned, points=3), net, train=train, test=test,
                                    progress=False))
    assert isinstance(train[0], StreamedImages)
    for k, values in profiles[0].path.items():
        assert profiles[1].path[k] == pytest.approx(values, abs=1e-5), k
