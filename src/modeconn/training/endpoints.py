"""Trained endpoints, each trained once and then served from the store.

The store key hashes everything that determines the weights: the dataset's
options (not where its files lie), the architecture, the training recipe and
the seed. Endpoint i of a run with seed s is trained with seed 1000 * s + i, so
runs with the same seed share endpoints across methods.

Spawned endpoints (``endpoint.spawn=K``, Frankle et al. 2020's instability analysis): a
*parent* is endpoint 0's training (its initialisation, data order and LR schedule) stopped
after K epochs; it is stored like any endpoint, under endpoint 0's spec plus
``prefix_epochs: K``. Child i continues it (weights and SGD momentum) from epoch K to the
end with endpoint i's data-order seed (1000 * s + i) and the same schedule as an unspawned
run, so children differ only in SGD noise. Its key holds ``spawn: {epochs, parent}``, so a
child never collides with an unspawned endpoint. K counts epochs, not steps: trainings
checkpoint and resume at epoch boundaries and the data order is a function of (seed, epoch),
so a child's epochs K.. are exactly those of a training from scratch, and a parent prefix is
an epoch checkpoint; the price is a resolution of one epoch (use a smaller
``dataset.train_size`` and more epochs for finer K). Prefixes nest, so a parent is trained
from the longest shorter prefix already stored: a sweep over K trains max(K) parent epochs.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from omegaconf import OmegaConf

from modeconn.data import Dataset, TensorLoader
from modeconn.errors import TrainingDiverged
from modeconn.models import build_arch
from modeconn.store import EndpointStore, Entry, spec_key
from modeconn.training.classifier import ClassifierModule
from modeconn.training.fit import fit, steps_per_epoch

# Bump when a change to models or training invalidates stored endpoints.
STORE_FORMAT = 1
FLOAT32 = ("32-true", "32")
# Dataset keys that say where data lies, not what it is.
_LOCATION_KEYS = ("root", "download")
# endpoint.* keys that are not part of the training recipe (files to load instead of training).
_NOT_RECIPE = ("checkpoints",)


def endpoint_seed(run_seed: int, index: int) -> int:
    return 1000 * int(run_seed) + index


def _as_dict(node) -> dict:
    return dict(node) if isinstance(node, dict) else OmegaConf.to_container(node, resolve=True)


def dataset_spec(cfg) -> dict:
    """The dataset's options that determine what is trained on (not where its files lie).
    A folder of images is whatever files it holds: its identity is the folder and a digest of
    its file list (``data.folder.folder_identity``), not the tensors."""
    spec = {k: v for k, v in _as_dict(cfg.dataset).items() if k not in _LOCATION_KEYS}
    if spec.get("name") == "folder":
        from modeconn.data.folder import folder_identity
        spec["source"] = folder_identity(cfg.dataset)
    return spec


def arch_spec(cfg) -> dict:
    """The architecture as the store key and training identities see it; a library or custom
    class adds its library and target (zoo archs keep the keys they always had)."""
    spec = {"name": cfg.arch.name, "params": _as_dict(cfg.arch.get("params") or {})}
    for key in ("library", "_target_"):
        if cfg.arch.get(key):
            spec[key] = cfg.arch[key]
    return spec


def spawn_epochs(cfg) -> int | None:
    """``endpoint.spawn`` (epochs of the shared parent), or None for independent endpoints."""
    value = cfg.endpoint.get("spawn") if "spawn" in cfg.endpoint else None
    return None if value is None else int(value)


def _base_spec(cfg, index: int) -> dict:
    recipe = {k: v for k, v in _as_dict(cfg.endpoint).items()   # unspawned keys stay as they were
              if k != "spawn" and k not in _NOT_RECIPE}
    spec = {
        "format": STORE_FORMAT,
        "dataset": dataset_spec(cfg),
        "arch": arch_spec(cfg),
        "recipe": recipe,
        "seed": endpoint_seed(cfg.seed, index),
    }
    precision = str(cfg.get("trainer", {}).get("precision", "32-true"))
    if precision not in FLOAT32:
        spec["precision"] = precision
    return spec


def parent_spec(cfg, epochs: int) -> dict:
    """The parent prefix: endpoint 0's training stopped after ``epochs`` epochs."""
    return {**_base_spec(cfg, 0), "prefix_epochs": int(epochs)}


def endpoint_spec(cfg, index: int) -> dict:
    """Everything that determines endpoint `index`'s trained weights. A numeric precision other
    than float32 (bf16 on a GPU) trains other weights, so it joins the key; float32 runs keep
    the keys they always had. A spawned endpoint names its parent's key."""
    spec = _base_spec(cfg, index)
    k = spawn_epochs(cfg)
    if k is not None:
        spec["spawn"] = {"epochs": k, "parent": spec_key(parent_spec(cfg, k))}
    return spec


def new_model(cfg, data: Dataset) -> torch.nn.Module:
    return build_arch(cfg.arch, data.input_shape, data.num_classes)


def initial_model(cfg, data: Dataset, seed: int) -> torch.nn.Module:
    """The network as `train_endpoint` starts it for `seed` (the global RNG is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return new_model(cfg, data)


def train_endpoint(spec: Mapping, cfg, data: Dataset, work_dir) -> tuple[dict, dict]:
    """Train one endpoint with the recipe in `spec`; returns (state_dict, meta)."""
    state, _, meta = _train(spec, cfg, data, work_dir, seed=spec["seed"], epochs=(0, spec["recipe"]["epochs"]),
                            name=f"endpoint seed {spec['seed']}")
    return state, meta


def _train(spec: Mapping, cfg, data: Dataset, work_dir, *, seed: int, epochs: tuple[int, int], name: str,
           start: Mapping[str, torch.Tensor] | None = None, momentum: Mapping[str, torch.Tensor] | None = None
           ) -> tuple[dict, dict, dict]:
    """Epochs ``epochs[0]..epochs[1]`` of the recipe's training with data-order seed ``seed``, from
    ``start`` (weights and buffers; default: the initialisation of ``seed``) and SGD ``momentum``.
    Returns (state_dict, momentum buffers, meta)."""
    recipe = spec["recipe"]
    torch.manual_seed(seed)
    model = new_model(cfg, data).to(data.x_train.device)     # = initial_model(cfg, data, seed)
    if start is not None:
        model.load_state_dict(dict(start))
    loader = TensorLoader(data.x_train, data.y_train, recipe["batch_size"], shuffle=True,
                          augment=data.augment, seed=seed)
    per_epoch = steps_per_epoch(loader, recipe.get("limit_batches"))
    total = per_epoch * recipe["epochs"]
    first, last = epochs
    module = ClassifierModule(model, loader, lr=recipe["lr"], momentum=recipe["momentum"], wd=recipe["wd"],
                              total_steps=total, schedule=recipe["schedule"], seed=seed, start_epoch=first,
                              step_offset=first * per_epoch, momentum_buffers=dict(momentum or {}))
    final, buffers = {}, dict(momentum or {})
    if last > first:
        trainer = fit(module, epochs=last - first, work_dir=work_dir, trainer_cfg=cfg.trainer,
                      identity={"endpoint": dict(spec)}, name=name, limit_batches=recipe.get("limit_batches"))
        final = {k: float(v) for k, v in trainer.callback_metrics.items()}
        buffers = module.momentum_state()
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    require_finite(state, name)
    return state, buffers, {"final_train_metrics": final, "steps": total, "epochs": [first, last]}


MOMENTUM = "optimizer.momentum_buffer/"   # how a parent's stored state names its SGD momentum


def obtain_parent(cfg, data: Dataset, epochs: int, store: EndpointStore) -> tuple[Entry, bool]:
    """The parent prefix of ``epochs`` epochs (weights, buffers and momentum), trained once: from the
    longest shorter prefix in the store, else from the initialisation."""
    spec = parent_spec(cfg, epochs)

    def create(work_dir):
        start, momentum, first = None, None, 0
        for k in range(epochs - 1, 0, -1):
            shorter = store.get(spec_key(parent_spec(cfg, k)))
            if shorter is not None:
                start, momentum = split_parent(shorter.state)
                first = k
                break
        state, buffers, meta = _train(spec, cfg, data, work_dir, seed=spec["seed"], epochs=(first, epochs),
                                      name=f"parent seed {spec['seed']} ({epochs} epochs)", start=start,
                                      momentum=momentum)
        meta["continued_from_epoch"] = first
        return {**state, **{MOMENTUM + k: v for k, v in buffers.items()}}, meta

    return store.get_or_create(spec, create)


def split_parent(state: Mapping[str, torch.Tensor]) -> tuple[dict, dict]:
    """A stored parent's (network state, momentum buffers)."""
    net = {k: v for k, v in state.items() if not k.startswith(MOMENTUM)}
    return net, {k[len(MOMENTUM):]: v for k, v in state.items() if k.startswith(MOMENTUM)}


def train_child(spec: Mapping, cfg, data: Dataset, work_dir, store: EndpointStore) -> tuple[dict, dict]:
    """A spawned endpoint: its parent continued to the end with this endpoint's data-order seed."""
    k = spec["spawn"]["epochs"]
    parent, _ = obtain_parent(cfg, data, k, store)
    start, momentum = split_parent(parent.state)
    state, _, meta = _train(spec, cfg, data, work_dir, seed=spec["seed"], epochs=(k, spec["recipe"]["epochs"]),
                            name=f"endpoint seed {spec['seed']} spawned at epoch {k}", start=start, momentum=momentum)
    meta["parent"] = parent.key
    return state, meta


def require_finite(state: Mapping[str, torch.Tensor], name: str) -> None:
    """Refuse weights with NaN/inf before they reach the store (a diverged training)."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise TrainingDiverged(f"{name}: the trained weights hold NaN or infinite values ({', '.join(bad[:3])}); "
                               f"nothing was stored: lower the learning rate")


def obtain_endpoint(cfg, data: Dataset, index: int, store: EndpointStore) -> tuple[Entry, bool]:
    """Endpoint `index` of this run: from the store, or trained now and stored (once, under a lock)."""
    spec = endpoint_spec(cfg, index)
    if "spawn" in spec:
        return store.get_or_create(spec, lambda work_dir: train_child(spec, cfg, data, work_dir, store))
    return store.get_or_create(spec, lambda work_dir: train_endpoint(spec, cfg, data, work_dir))
