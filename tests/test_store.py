"""Tests for the content-addressed endpoint store, including real-process kill / lock races."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from torch import nn

from modeconn import store as store_mod
from modeconn.store import (
    CorruptEntry,
    EndpointStore,
    IncompatibleCheckpoint,
    default_home,
    load_state,
    spec_key,
)

SPEC = {
    "data": {"name": "mnist1d", "n_train": 4000, "noise": 0.25},
    "arch": {"name": "mlp", "widths": [64, 64]},
    "recipe": {"lr": 0.1, "epochs": 3, "wd": 5e-4, "nesterov": True},
    "seed": 0,
}


# Real processes for the kill / lock tests. forkserver with torch preloaded makes each child
# start in a fraction of a second (spawn would re-import torch every time); the children are
# still separate processes with their own file descriptors, which is what flock cares about.
# They report progress over a queue, so the parent never sleeps to guess timing.
def _mp():
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    # (3.11 ignores sys.path when preloading, so name the installed modules too; a no-op if
    # another test already started the server: children then just import on first use)
    ctx.set_forkserver_preload(["torch", "modeconn.store", __name__])
    return ctx


def _kill(proc) -> None:
    proc.kill()  # SIGKILL: no cleanup handlers, no finally blocks
    proc.join(10)
    assert proc.exitcode == -signal.SIGKILL


def _writer_blocked_at_rename(root, q):
    def blocked_rename(src, dst):
        q.put("renaming")
        time.sleep(600)

    os.rename = blocked_rename  # this child only
    EndpointStore(root).put("abc", {"w": torch.randn(1000)}, {})


def _racer(root, counter, q, go):
    def create(work):
        with open(counter, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(1.0)
        return {"w": torch.randn(5), "n": torch.tensor(3)}, {}

    q.put("ready")
    go.wait(30)  # start both at once
    entry, cached = EndpointStore(root).get_or_create(SPEC, create)
    q.put({"cached": cached, "w": entry.state["w"].tolist(), "n": int(entry.state["n"])})


def _lock_holder(root, q):
    def create(work):
        (work / "last.ckpt").write_text("epoch 1")
        q.put("training")
        time.sleep(600)

    EndpointStore(root).get_or_create(SPEC, create)


# ----------------------------------------------------------------------- keys


def test_default_home(monkeypatch, tmp_path):
    monkeypatch.setenv("MODECONN_HOME", str(tmp_path / "h"))
    assert default_home() == tmp_path / "h"
    assert EndpointStore().root == tmp_path / "h"
    monkeypatch.delenv("MODECONN_HOME")
    assert default_home() == Path.home() / ".cache" / "modeconn"


def _leaves(obj, path=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, path + (i,))
    else:
        yield path, obj


def _set(obj, path, value):
    obj = json.loads(json.dumps(obj))
    cur = obj
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return obj


def test_spec_key_stable_and_sensitive():
    key = spec_key(SPEC)
    assert len(key) == 20 and int(key, 16) >= 0
    reordered = {k: (dict(reversed(list(v.items()))) if isinstance(v, dict) else v) for k, v in reversed(SPEC.items())}
    assert spec_key(reordered) == key
    assert spec_key({**SPEC, "arch": {"name": "mlp", "widths": (64, 64)}}) == key  # tuple == list
    # pinned: the key must not drift between versions, or every cached endpoint is retrained;
    # it is sha256('{"a":[1,"x",null,true],"b":1.0,"c":{"lr":0.1,"wd":0.0005}}')[:20]
    assert spec_key({"c": {"wd": 5e-4, "lr": 0.1}, "b": 1.0, "a": [1, "x", None, True]}) == "587eef458c72a6b5bdaf"
    seen = {key}
    for path, value in _leaves(SPEC):
        changed = {bool: lambda v: not v, int: lambda v: v + 1, float: lambda v: v * 1.5, str: lambda v: v + "x"}[
            type(value)
        ](value)
        k = spec_key(_set(SPEC, path, changed))
        assert k not in seen, path
        seen.add(k)
    assert spec_key({**SPEC, "extra": None}) not in seen
    assert spec_key({**SPEC, "seed": True}) != spec_key({**SPEC, "seed": 1})
    with pytest.raises(TypeError, match="spec.arch"):
        spec_key({"arch": object()})


# ------------------------------------------------------------------ put / get


def test_put_get_roundtrip(tmp_path):
    bn = nn.BatchNorm1d(3)
    bn(torch.randn(8, 3))  # num_batches_tracked -> 1 (int64, 0-d)
    shared = torch.randn(4, 3)
    state = {
        "emb.weight": shared,
        "head.weight": shared,  # tied weights share storage
        "t.weight": shared.t(),  # non-contiguous view of the same storage
        "half": torch.randn(2, dtype=torch.bfloat16),
        **{f"bn.{k}": v for k, v in bn.state_dict().items()},
    }
    store = EndpointStore(tmp_path)
    assert store.get("abc") is None and store.keys() == []
    put = store.put("abc", state, {"val_acc": 0.9})
    got = EndpointStore(tmp_path).get("abc")
    assert set(got.state) == set(state)
    for k, v in state.items():
        assert got.state[k].dtype == v.dtype and torch.equal(got.state[k], v), k
        assert torch.equal(put.state[k], v)
    assert got.state["bn.num_batches_tracked"].dtype == torch.int64
    assert int(got.state["bn.num_batches_tracked"]) == 1
    shared.add_(1)  # the entry does not alias the caller's tensors
    assert not torch.equal(put.state["emb.weight"], shared)
    assert got.meta == put.meta
    assert got.meta["val_acc"] == 0.9 and got.meta["key"] == "abc" and "T" in got.meta["created"]
    assert set(got.meta["versions"]) == {"torch", "safetensors", "modeconn"}
    assert got.meta["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert store.keys() == ["abc"]
    assert sorted(os.listdir(store.entry_dir("abc"))) == ["meta.json", "weights.safetensors"]
    # content-addressed: a second put of the same key keeps the first entry
    again = store.put("abc", {"other": torch.zeros(1)}, {})
    assert set(again.state) == set(state)
    with pytest.raises(ValueError):
        store.entry_dir("../evil")


def test_get_or_create_meta_and_workdir(tmp_path):
    store = EndpointStore(tmp_path)
    calls = []

    def create(work: Path):
        assert work == store.work_dir(spec_key(SPEC)) and work.is_dir()
        (work / "last.ckpt").write_text("x")
        calls.append(work)
        return {"w": torch.ones(2)}, {"note": "hi"}

    entry, cached = store.get_or_create(SPEC, create)
    assert not cached and len(calls) == 1
    assert entry.meta["spec"] == json.loads(json.dumps(SPEC)) and entry.meta["note"] == "hi"
    assert entry.key == spec_key(SPEC)
    assert not store.work_dir(entry.key).exists()  # scratch removed after the put
    entry2, cached2 = store.get_or_create(SPEC, create)
    assert cached2 and len(calls) == 1 and torch.equal(entry2.state["w"], entry.state["w"])


def test_stale_tmp_dir_ignored_and_cleaned(tmp_path):
    store = EndpointStore(tmp_path)
    stale = tmp_path / "endpoints" / ".tmp-abc-deadbeef"
    stale.mkdir(parents=True)
    (stale / "weights.safetensors").write_bytes(b"half written")
    assert store.get("abc") is None and store.keys() == []
    store.put("abc", {"w": torch.zeros(1)}, {})
    assert not stale.exists() and store.keys() == ["abc"]


def test_rename_race_returns_existing(tmp_path, monkeypatch):
    """A writer that did not hold the lock renamed first: ours is dropped, theirs returned."""
    theirs = EndpointStore(tmp_path / "other").put("k", {"w": torch.full((2,), 7.0)}, {"who": "them"})
    store = EndpointStore(tmp_path)
    real_rename = os.rename

    def racing_rename(src, dst):
        shutil.copytree(tmp_path / "other" / "endpoints" / "k", dst)
        return real_rename(src, dst)

    monkeypatch.setattr(store_mod.os, "rename", racing_rename)
    got = store.put("k", {"w": torch.zeros(2)}, {"who": "us"})
    assert got.meta["who"] == "them" and torch.equal(got.state["w"], theirs.state["w"])
    assert store.keys() == ["k"] and os.listdir(tmp_path / "endpoints") == ["k"]


def test_corrupt_entry_raises_naming_dir(tmp_path):
    store = EndpointStore(tmp_path)
    key = spec_key(SPEC)
    store.put(key, {"w": torch.zeros(3)}, {})
    d = store.entry_dir(key)
    (d / "weights.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CorruptEntry, match="delete") as ei:
        store.get(key)
    assert str(d) in str(ei.value)

    def create(_):
        raise AssertionError("must not retrain over a corrupt entry")

    with pytest.raises(CorruptEntry):
        store.get_or_create(SPEC, create)
    (d / "meta.json").write_text("{not json")
    with pytest.raises(CorruptEntry, match="meta.json") as ei:
        store.get(key)
    assert str(d) in str(ei.value)


# ------------------------------------------------------------ real processes


def test_writer_killed_mid_write_leaves_no_entry(tmp_path):
    ctx = _mp()
    q = ctx.Queue()
    proc = ctx.Process(target=_writer_blocked_at_rename, args=(tmp_path, q))
    proc.start()
    try:
        assert q.get(timeout=60) == "renaming"  # both files written and fsynced, rename pending
    finally:
        _kill(proc)
    store = EndpointStore(tmp_path)
    assert [p.name.startswith(".tmp-abc-") for p in (tmp_path / "endpoints").iterdir()] == [True]
    assert store.get("abc") is None and store.keys() == []
    store.put("abc", {"w": torch.ones(3)}, {})
    assert os.listdir(tmp_path / "endpoints") == ["abc"]
    assert torch.equal(store.get("abc").state["w"], torch.ones(3))


def test_concurrent_get_or_create_trains_once(tmp_path):
    ctx = _mp()
    q, go = ctx.Queue(), ctx.Event()
    counter = tmp_path / "counter.txt"
    procs = [ctx.Process(target=_racer, args=(tmp_path, counter, q, go)) for _ in range(2)]
    for p in procs:
        p.start()
    try:
        assert [q.get(timeout=60), q.get(timeout=60)] == ["ready", "ready"]
        go.set()
        outs = [q.get(timeout=60), q.get(timeout=60)]
        for p in procs:
            p.join(10)
        assert [p.exitcode for p in procs] == [0, 0]
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
    assert len(counter.read_text().splitlines()) == 1
    assert sorted(o["cached"] for o in outs) == [False, True]
    assert outs[0]["w"] == outs[1]["w"] and outs[0]["n"] == outs[1]["n"] == 3


def test_killed_lock_holder_does_not_deadlock(tmp_path):
    ctx = _mp()
    q = ctx.Queue()
    proc = ctx.Process(target=_lock_holder, args=(tmp_path, q))
    proc.start()
    key = spec_key(SPEC)
    lock_path = tmp_path / "locks" / f"{key}.lock"
    try:
        assert q.get(timeout=60) == "training"
        with pytest.raises(TimeoutError):  # the child really holds it (filelock.Timeout is a TimeoutError)
            FileLock(str(lock_path), timeout=0).acquire()
    finally:
        _kill(proc)
    with FileLock(str(lock_path), timeout=10):  # fails the test instead of hanging if not released
        pass
    store = EndpointStore(tmp_path)
    resumed = []

    def create(work):
        resumed.append((work / "last.ckpt").read_text())  # scratch from the killed run survives
        return {"w": torch.zeros(1)}, {}

    entry, cached = store.get_or_create(SPEC, create)
    assert not cached and resumed == ["epoch 1"] and store.keys() == [key]
    assert not store.work_dir(key).exists()


# ----------------------------------------------------------------- load_state


def _model():
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def test_load_state_matching():
    src, dst = _model(), _model()
    src[1](torch.randn(5, 4))
    load_state(dst, src.state_dict(), "endpoints/abc")
    for (k, a), b in zip(src.state_dict().items(), dst.state_dict().values()):
        assert torch.equal(a, b), k


def test_load_state_mismatch_messages():
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bad = dict(_model().state_dict())
    bad["0.weight"] = torch.zeros(5, 3)
    with pytest.raises(IncompatibleCheckpoint) as ei:
        load_state(model, bad, "endpoints/abc")
    msg = str(ei.value)
    assert "endpoints/abc" in msg and "0.weight" in msg and "(5, 3)" in msg and "(4, 3)" in msg
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched

    missing = dict(_model().state_dict())
    del missing["2.bias"]
    missing["extra.w"] = torch.zeros(1)
    with pytest.raises(IncompatibleCheckpoint, match=r"src\.safetensors.*missing \(1\): 2\.bias.*unexpected \(1\): extra\.w"):
        load_state(model, missing, "src.safetensors")
    assert issubclass(IncompatibleCheckpoint, ValueError)
