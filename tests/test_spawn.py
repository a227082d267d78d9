"""endpoint.spawn=K (Frankle et al. 2020): children of one parent prefix, keyed apart, parents trained once."""
from __future__ import annotations

import pytest
import torch

from modeconn import validate
from modeconn.store import EndpointStore, spec_key
from modeconn.training import endpoints as ep

SMALL = ("dataset=digits", "dataset.train_size=256", "arch.params.width=16", "arch.params.depth=1",
         "endpoint.epochs=4", "endpoint.limit_batches=null")


@pytest.fixture
def count_fits(monkeypatch):
    """Every training the endpoints module starts: (name, epochs)."""
    calls = []
    real = ep.fit

    def counting(module, *, epochs, name, **kw):
        calls.append((name, epochs))
        return real(module, epochs=epochs, name=name, **kw)

    monkeypatch.setattr(ep, "fit", counting)
    return calls


def _data(cfg):
    from modeconn.data import load_dataset
    return load_dataset(cfg.dataset, torch.device("cpu"), home=cfg.store_dir)


def test_spawn_keys_never_collide_and_unspawned_keys_are_unchanged(run_config):
    plain = run_config(*SMALL)
    assert "spawn" not in ep.endpoint_spec(plain, 0)["recipe"]          # old store keys stay valid
    keys = {spec_key(ep.endpoint_spec(plain, i)) for i in (0, 1)}
    for k in (0, 1, 2):
        cfg = run_config(*SMALL, f"endpoint.spawn={k}")
        spec = ep.endpoint_spec(cfg, 1)
        assert spec["spawn"] == {"epochs": k, "parent": spec_key(ep.parent_spec(cfg, k))}
        keys |= {spec_key(ep.endpoint_spec(cfg, i)) for i in (0, 1)} | {spec["spawn"]["parent"]}
    assert len(keys) == 2 + 3 * 3                                         # every child and parent its own key


def test_spawn_is_validated(run_config):
    assert validate.problems(run_config(*SMALL, "endpoint.spawn=3")) == []
    assert any("endpoint.spawn=4" in p for p in validate.problems(run_config(*SMALL, "endpoint.spawn=4")))
    assert any("endpoint.spawn=-1" in p for p in validate.problems(run_config(*SMALL, "endpoint.spawn=-1")))
    assert any("align.repair" in p for p in validate.problems(run_config(*SMALL, "method=bezier", "align.repair=true")))


def test_child_zero_continues_its_parent_exactly_and_child_one_differs(run_config, tmp_path, count_fits):
    """Child 0 has endpoint 0's data order, so (weights, momentum, LR schedule and data order all
    carried over at epoch K) it is bit for bit the unspawned endpoint 0; child 1 is not."""
    store = EndpointStore(tmp_path / "store")
    plain = run_config(*SMALL)
    data = _data(plain)
    reference, _ = ep.obtain_endpoint(plain, data, 0, store)
    cfg = run_config(*SMALL, "endpoint.spawn=2")
    child0, _ = ep.obtain_endpoint(cfg, data, 0, store)
    child1, _ = ep.obtain_endpoint(cfg, data, 1, store)
    assert child0.key != reference.key
    assert all(torch.equal(child0.state[k], reference.state[k]) for k in reference.state)
    assert not torch.equal(child1.state["classifier.weight"], reference.state["classifier.weight"])
    parent = store.get(cfg_parent := spec_key(ep.parent_spec(cfg, 2)))
    assert parent is not None and child1.meta["parent"] == cfg_parent
    # the parent trained 2 epochs once, each child 2 more
    assert sorted(e for _, e in count_fits) == [2, 2, 2, 4]


def test_a_sweep_over_k_trains_each_parent_prefix_once(run_config, tmp_path, count_fits):
    """K = 0..3 and two runs per K (as a sweep over align x K does): each parent prefix is trained
    once, each from the longest shorter one (3 parent epochs in all), children once each."""
    store = EndpointStore(tmp_path / "store")
    data = _data(run_config(*SMALL))
    for k in (0, 1, 2, 3):
        for _ in range(2):
            cfg = run_config(*SMALL, f"endpoint.spawn={k}")
            for i in (0, 1):
                ep.obtain_endpoint(cfg, data, i, store)
    parents = [(n, e) for n, e in count_fits if n.startswith("parent")]
    children = [(n, e) for n, e in count_fits if "spawned" in n]
    assert parents == [(f"parent seed 0 ({k} epochs)", 1) for k in (1, 2, 3)]   # K=0 is the initialisation
    assert sorted(e for _, e in children) == [1, 1, 2, 2, 3, 3, 4, 4]
    assert len(store.keys()) == 4 + 8                                      # 4 parents, 8 children
