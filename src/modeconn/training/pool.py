"""A pool of independently trained nets of one (dataset, arch, recipe): the training set of a
global connection model (Anokhin & Yarotsky's flow).

Pool net k is an ordinary endpoint of the store whose seed is ``POOL_SEED + k``, a range no
run's endpoints use (run seed s trains endpoint i with seed 1000 s + i), so the pool never
contains the two nets being connected and is shared by every run seed.
"""
from __future__ import annotations

import copy

from modeconn.data import Dataset
from modeconn.store import EndpointStore, Entry
from modeconn.training.endpoints import endpoint_spec, train_endpoint

POOL_SEED = 1_000_000


def pool_spec(cfg, k: int) -> dict:
    spec = copy.deepcopy(endpoint_spec(cfg, 0))
    spec.pop("spawn", None)           # pool nets are independent, whatever the run's endpoints are
    spec["seed"] = POOL_SEED + k
    return spec


def pool_net(cfg, data: Dataset, k: int, store: EndpointStore) -> tuple[Entry, bool]:
    """Pool net k from the store, trained now (once, under the store's lock) if absent."""
    spec = pool_spec(cfg, k)
    return store.get_or_create(spec, lambda work_dir: train_endpoint(spec, cfg, data, work_dir))
