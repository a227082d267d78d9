"""Endpoints from files: safe reading, prefixes, and one-line errors naming the file and the key."""
from __future__ import annotations

import collections
import pathlib
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from conftest import REPO, compose_config
from modeconn import validate
from modeconn.checkpoints import CheckpointError, find_prefix, load_checkpoint, read_tensors
from modeconn.models import build_model

SHAPE, CLASSES = (1, 8, 8), 10      # digits: the run's network is known before its data is loaded


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("mlp", {"width": 32, "batchnorm": True}, SHAPE, CLASSES)


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("layout", ["safetensors", "plain .pt", "DDP module.", "Lightning .ckpt", "nested model"])
def test_every_saved_layout_loads_to_the_same_state(tmp_path, layout):
    net, state = _net(), _net(1).state_dict()
    if layout == "safetensors":
        path = tmp_path / "w.safetensors"
        save_file(state, str(path))
    elif layout == "plain .pt":
        path = tmp_path / "w.pt"
        torch.save(state, path)
    elif layout == "DDP module.":
        path = tmp_path / "w.pth"
        torch.save(collections.OrderedDict((f"module.{k}", v) for k, v in state.items()), path)
    elif layout == "Lightning .ckpt":    # what Lightning writes: weights under state_dict, optimizer state beside
        path = tmp_path / "w.ckpt"
        torch.save({"epoch": 3, "global_step": 30, "pytorch-lightning_version": "2.6.6",
                    "state_dict": {f"model.{k}": v for k, v in state.items()},
                    "optimizer_states": [{"state": {0: {"momentum_buffer": torch.zeros(3)}}, "param_groups": []}],
                    "lr_schedulers": [], "callbacks": {}}, path)
    else:
        path = tmp_path / "w.pt"
        torch.save({"epoch": 3, "model": state, "note": "trained elsewhere"}, path)
    loaded = load_checkpoint(net, path)
    assert _equal(loaded, state)
    assert not _equal(net.state_dict(), state)      # the template network is not changed


@pytest.mark.slow      # a Lightning fit: ~10 s here
def test_a_checkpoint_written_by_lightning_itself_loads(tmp_path):
    """A real Lightning checkpoint (modeconn's own endpoint training) reads with weights_only=True."""
    from modeconn.data import TensorLoader
    from modeconn.training.classifier import ClassifierModule
    from modeconn.training.fit import fit

    net = _net(2)
    x, y = torch.randn(64, *SHAPE), torch.randint(0, CLASSES, (64,))
    module = ClassifierModule(net, TensorLoader(x, y, 32, seed=0), lr=0.01, momentum=0.9, wd=0.0, total_steps=2,
                              schedule="constant", seed=0)
    fit(module, epochs=1, work_dir=tmp_path, trainer_cfg={"progress": False}, identity={}, name="tiny")
    assert _equal(load_checkpoint(_net(), tmp_path / "last.ckpt"), net.state_dict())


def test_objects_beside_the_weights_are_left_out_unpickled_and_among_them_refused(tmp_path):
    """A Lightning checkpoint of a Hydra project keeps an OmegaConf config in hyper_parameters:
    weights_only=True refuses it, an inert stand-in takes its place, the weights load. The same
    object among the weights is refused, naming its key."""
    from omegaconf import OmegaConf

    state = _net(1).state_dict()
    beside, among = tmp_path / "beside.ckpt", tmp_path / "among.pt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()},
                "hyper_parameters": {"cfg": OmegaConf.create({"arch": {"width": 32}})}}, beside)
    torch.save({**state, "config": OmegaConf.create({"a": 1})}, among)
    tensors = read_tensors(beside)
    assert tensors.opaque == {"hyper_parameters.cfg": "omegaconf.dictconfig.DictConfig"}
    assert _equal(load_checkpoint(_net(), beside), state)
    with pytest.raises(CheckpointError, match=r"among.pt: key config: holds a pickled object \(omegaconf"):
        load_checkpoint(_net(), among)


def test_the_prefix_that_fits_most_keys_wins():
    expected = ["0.weight", "0.bias", "2.weight"]
    keys = ["state_dict.model.0.weight", "state_dict.model.0.bias", "state_dict.model.2.weight",
            "state_dict.ema.0.weight", "epoch"]
    assert find_prefix(keys, expected) == "state_dict.model."
    assert find_prefix(expected, expected) == ""


def _bad_files(tmp_path) -> dict[str, pathlib.Path]:
    state = _net().state_dict()
    wrong = dict(state)
    wrong["features.0.linear.weight"] = torch.zeros(16, 64)
    missing = {k: v for k, v in state.items() if k != "classifier.bias"}
    files = {"shape": tmp_path / "wrong_shape.pt", "missing": tmp_path / "missing_key.safetensors",
             "pickled": tmp_path / "pickled.pt"}
    torch.save(wrong, files["shape"])
    save_file(missing, str(files["missing"]))
    marker = tmp_path / "code_ran"
    torch.save({"state_dict": {**state, "extra": _Planted(marker)}}, files["pickled"])
    return files


class _Planted:
    """An object whose unpickling would create a file: it must never be unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_wrong_shape_missing_key_and_pickled_object_each_name_file_and_key(tmp_path):
    net, files = _net(), _bad_files(tmp_path)
    expected = {"shape": ["wrong_shape.pt", "features.0.linear.weight", "(16, 64)", "(32, 64)"],
                "missing": ["missing_key.safetensors", "classifier.bias"],
                "pickled": ["pickled.pt", "state_dict.extra", "not unpickled"]}
    for case, path in files.items():
        with pytest.raises(CheckpointError) as error:
            load_checkpoint(net, path)
        message = str(error.value)
        assert "\n" not in message and all(part in message for part in expected[case]), message
    assert not (tmp_path / "code_ran").exists()


def test_a_file_that_is_no_checkpoint_is_one_line(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a file of tensors")
    for path, says in ((junk, "not a readable safetensors file"), (tmp_path / "absent.pt", "no such checkpoint"),
                       (tmp_path / "w.npz", "unknown checkpoint type")):
        if path.suffix == ".npz":
            path.write_bytes(b"x")
        with pytest.raises(CheckpointError, match=says):
            read_tensors(path)


def test_validation_refuses_bad_files_and_too_few_before_any_work(tmp_path):
    files = _bad_files(tmp_path)
    good = tmp_path / "good.safetensors"
    save_file(_net(3).state_dict(), str(good))
    base = ("dataset=digits", "arch=mlp", "arch.params.width=32", "arch.params.batchnorm=true")
    listed = ",".join(str(p) for p in files.values())
    problems = validate.problems(compose_config(*base, f"endpoint.checkpoints=[{listed}]"))
    assert len(problems) == 3 and [str(p) in line for p, line in zip(files.values(), problems)] == [True] * 3
    assert validate.problems(compose_config(*base, f"endpoint.checkpoints=[{good},{good}]")) == []
    (few,) = validate.problems(compose_config(*base, f"endpoint.checkpoints=[{good}]"))
    assert "has 1 files; method=linear needs 2" in few
    (fge,) = validate.problems(compose_config(*base, "method=fge", f"endpoint.checkpoints=[{good}]"))
    assert "method=fge" in fge


@pytest.mark.slow      # a subprocess: ~20 s of imports on this shared 2-core machine
def test_the_command_line_says_one_line_per_bad_file_exits_2_and_writes_nothing(tmp_path):
    files = _bad_files(tmp_path)
    home, run_dir = tmp_path / "home", tmp_path / "run"
    listed = ",".join(str(p) for p in files.values())
    proc = subprocess.run(
        [sys.executable, "-m", "modeconn", "dataset=digits", "arch=mlp", "arch.params.width=32",
         "arch.params.batchnorm=true", "logger=none", f"endpoint.checkpoints=[{listed}]", f"hydra.run.dir={run_dir}"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
        env={**__import__("os").environ, "MODECONN_HOME": str(home), "WANDB_MODE": "disabled",
             "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"})
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 3, proc.stderr
    for line, path in zip(lines, files.values()):
        assert line.startswith("modeconn: error: ") and str(path) in line
    assert "features.0.linear.weight" in lines[0] and "classifier.bias" in lines[1] and "state_dict.extra" in lines[2]
    assert not home.exists() and not (run_dir / "results.json").exists()
    assert not (tmp_path / "code_ran").exists()


def test_sweep_jobs_recorded_before_endpoint_checkpoints_existed_still_count_as_done():
    from omegaconf import OmegaConf

    from modeconn.resume import comparable
    now = OmegaConf.to_container(compose_config("output_dir=x"), resolve=False)
    before = {**now, "endpoint": {k: v for k, v in now["endpoint"].items() if k != "checkpoints"}}
    assert comparable(before) == comparable(now)
    files = {**now, "endpoint": {**now["endpoint"], "checkpoints": ["a.pt", "b.pt"]}}
    assert comparable(files) != comparable(now)
