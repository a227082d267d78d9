"""Trained endpoints, each trained once and then served from the store.

The store key hashes everything that determines the weights: the dataset's
options (not where its files lie), the architecture, the training recipe and
the seed. Endpoint i of a run with seed s is trained with seed 1000 * s + i, so
runs with the same seed share endpoints across methods.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from omegaconf import OmegaConf

from modeconn.data import Dataset, TensorLoader
from modeconn.errors import TrainingDiverged
from modeconn.models import build_arch
from modeconn.store import EndpointStore, Entry
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


def endpoint_spec(cfg, index: int) -> dict:
    """Everything that determines endpoint `index`'s trained weights. A numeric precision other
    than float32 (bf16 on a GPU) trains other weights, so it joins the key; float32 runs keep
    the keys they always had."""
    spec = {
        "format": STORE_FORMAT,
        "dataset": dataset_spec(cfg),
        "arch": arch_spec(cfg),
        "recipe": {k: v for k, v in _as_dict(cfg.endpoint).items() if k not in _NOT_RECIPE},
        "seed": endpoint_seed(cfg.seed, index),
    }
    precision = str(cfg.get("trainer", {}).get("precision", "32-true"))
    if precision not in FLOAT32:
        spec["precision"] = precision
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
    recipe = spec["recipe"]
    torch.manual_seed(spec["seed"])
    model = new_model(cfg, data).to(data.x_train.device)     # = initial_model(cfg, data, spec["seed"])
    loader = TensorLoader(data.x_train, data.y_train, recipe["batch_size"], shuffle=True,
                          augment=data.augment, seed=spec["seed"])
    total = steps_per_epoch(loader, recipe.get("limit_batches")) * recipe["epochs"]
    module = ClassifierModule(model, loader, lr=recipe["lr"], momentum=recipe["momentum"], wd=recipe["wd"],
                              total_steps=total, schedule=recipe["schedule"], seed=spec["seed"])
    trainer = fit(module, epochs=recipe["epochs"], work_dir=work_dir, trainer_cfg=cfg.trainer,
                  identity={"endpoint": dict(spec)}, name=f"endpoint seed {spec['seed']}",
                  limit_batches=recipe.get("limit_batches"))
    final = {k: float(v) for k, v in trainer.callback_metrics.items()}
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    require_finite(state, f"endpoint seed {spec['seed']}")
    return state, {"final_train_metrics": final, "steps": total}


def require_finite(state: Mapping[str, torch.Tensor], name: str) -> None:
    """Refuse weights with NaN/inf before they reach the store (a diverged training)."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise TrainingDiverged(f"{name}: the trained weights hold NaN or infinite values ({', '.join(bad[:3])}); "
                               f"nothing was stored: lower the learning rate")


def obtain_endpoint(cfg, data: Dataset, index: int, store: EndpointStore) -> tuple[Entry, bool]:
    """Endpoint `index` of this run: from the store, or trained now and stored (once, under a lock)."""
    spec = endpoint_spec(cfg, index)
    return store.get_or_create(spec, lambda work_dir: train_endpoint(spec, cfg, data, work_dir))
