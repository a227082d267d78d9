"""The Python API: your own ``nn.Module`` and weights in, the command line's numbers and records out.

::

    import modeconn as mc
    a, b = mc.load_weights(net, "a.safetensors"), mc.load_weights(net, "b.pt")
    b_aligned, report = mc.align_weights(net, a, b, method="weight")     # "activation" needs data=
    path = mc.bezier(net, a, b_aligned, num_bends=3)                     # mc.linear, mc.polychain, mc.simplex
    mc.train_path(path, net, train, epochs=10)                           # the Lightning path trainer
    profile = mc.evaluate(path, net, train=train, test=test, alignment=report)
    profile.summary["barrier"]["test_err"]; profile.plot("path.png"); profile.to_json("profile.json")

Every function here is a thin layer over what a ``modeconn`` run does (the same Path classes,
alignment, trainer and evaluation protocol), so the numbers are the run's: a profile's
``record`` is results.json's ``path``/``summary``/``alignment`` sections.

Weights are state dicts (or modules, or flat vectors in the network's parameter order); data
is a ``torch.utils.data.Dataset`` of (input, label) pairs, a DataLoader of batches, or an
``(x, y)`` pair of tensors. It is gathered into tensors on ``device`` once (the protocol
passes over the whole training set at every point). ``device=None`` means the network's.
"""
from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path as FilePath

import torch
from torch import Tensor, nn

from modeconn.checkpoints import CheckpointError, load_checkpoint, match_state
from modeconn.data.base import Dataset
from modeconn.evaluation.metrics import evaluate_point
from modeconn.evaluation.plots import plot_profile
from modeconn.evaluation.profile import evaluate_path
from modeconn.paths import Path, build_path
from modeconn.paths.simplex import SimplicialComplexPath
from modeconn.paths.space import ParameterSpace
from modeconn.results import write_json_atomic

Weights = Mapping[str, Tensor] | nn.Module | Tensor
Data = torch.utils.data.Dataset | torch.utils.data.DataLoader | Sequence[Tensor]


# --------------------------------------------------------------------------- weights


def load_weights(net: nn.Module, file: str | FilePath) -> dict[str, Tensor]:
    """``net``'s state dict from a ``.safetensors`` / ``.pt`` / ``.pth`` / ``.ckpt`` file (CPU).

    Never unpickles an object (``torch.load(weights_only=True)``); a prefix such as ``model.``
    or ``module.`` (Lightning, DDP) is found and stripped. A missing or unexpected key, a wrong
    shape or a pickled object raises :class:`CheckpointError` naming the file and the key.
    ``net`` is not changed.
    """
    return load_checkpoint(net, file)


def _state(net: nn.Module, weights: Weights, what: str) -> dict[str, Tensor]:
    """A full state dict (parameters and buffers) for ``weights``, checked against ``net``."""
    if isinstance(weights, nn.Module):
        weights = weights.state_dict()
    if isinstance(weights, Tensor):
        space = ParameterSpace(net)
        return {**net.state_dict(), **space.unflatten(weights.detach())}
    return match_state(net, weights, what)


def _vector(net: nn.Module, space: ParameterSpace, weights: Weights, what: str) -> Tensor:
    if isinstance(weights, Tensor):
        if weights.shape != (space.dim,):
            raise CheckpointError(f"{what}: a flat vector of {tuple(weights.shape)}, {type(net).__name__} has "
                                  f"{space.dim} parameters")
        return weights.detach().float()
    return space.flatten(_state(net, weights, what))


def _device(net: nn.Module, device) -> torch.device:
    if device is not None:
        return torch.device(device)
    return next((p.device for p in net.parameters()), torch.device("cpu"))


# --------------------------------------------------------------------------- data


def _tensors(data: Data, what: str) -> tuple[Tensor, Tensor]:
    """(x, y) from a pair of tensors, a map-style Dataset or an iterable of (x, y) batches."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(hasattr(t, "shape") for t in data):
        x, y = data        # tensors, or a streamed folder's images (image_folder above its memory limit)
    else:
        if isinstance(data, torch.utils.data.Dataset) and not isinstance(data, torch.utils.data.IterableDataset):
            batches: Iterable = torch.utils.data.DataLoader(data, batch_size=512, shuffle=False)
        elif isinstance(data, Iterable):
            batches = data
        else:
            raise TypeError(f"{what}: give a Dataset, a DataLoader or an (x, y) pair of tensors, "
                            f"not {type(data).__name__}")
        xs, ys = [], []
        for batch in batches:
            xs.append(torch.as_tensor(batch[0]))
            ys.append(torch.as_tensor(batch[1]))
        if not xs:
            raise ValueError(f"{what}: no examples")
        x, y = torch.cat(xs), torch.cat(ys)
    if len(x) != len(y):
        raise ValueError(f"{what}: {len(x)} inputs but {len(y)} labels")
    return x.float(), torch.as_tensor(y).long()


def as_dataset(train: Data, test: Data | None = None, *, device=None, num_classes: int | None = None) -> Dataset:
    """Train (and test) data as modeconn's in-memory :class:`~modeconn.data.Dataset` on ``device``
    (a test set of None is the training set's first example, for training-only use)."""
    if isinstance(train, Dataset):
        return train.to(device or train.device)
    x, y = _tensors(train, "train")
    xt, yt = _tensors(test, "test") if test is not None else (x[:1], y[:1])
    classes = num_classes or int(max(int(y.max()), int(yt.max())) + 1)
    return Dataset(name="api", x_train=x, y_train=y, x_test=xt, y_test=yt, num_classes=classes,
                   input_shape=tuple(x.shape[1:])).to(device or "cpu")


def image_folder(root: str | FilePath, *, size: int | Sequence[int] = 32, channels: int = 3,
                 mean=None, std=None, train: str = "train", test: str | None = None,
                 memory_limit_gb: float = 4.0) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """A folder in ImageFolder layout as ``((x_train, y_train), (x_test, y_test))``, prepared
    exactly as ``dataset=folder`` prepares it (resize, channels, normalisation)."""
    from modeconn.data.folder import load_folder

    data = load_folder({"root": str(root), "size": size, "channels": channels, "mean": mean, "std": std,
                        "train": train, "test": test, "memory_limit_gb": memory_limit_gb})
    return (data.x_train, data.y_train), (data.x_test, data.y_test)


# --------------------------------------------------------------------------- alignment


def align_weights(net: nn.Module, a: Weights, b: Weights, *, method: str = "weight", data: Data | None = None,
                  input_shape: Sequence[int] | None = None, samples: int = 10_000, batch_size: int = 500,
                  max_iter: int = 100, seed: int = 0, device=None) -> tuple[dict[str, Tensor], dict]:
    """B's weights with its hidden units permuted to match A's (the same function), and the
    report results.json keeps as ``alignment``.

    ``method``: ``"weight"`` (Git Re-Basin weight matching), ``"activation"`` (Tatro: feature
    correlations on ``samples`` inputs of ``data``), ``"ot"``. The permutation groups are traced
    from ``net`` for inputs of ``input_shape`` (default: ``data``'s); an operation the tracer does
    not know is named in the error. The logit check runs on ``data``'s first inputs, or on
    random ones when no data is given.
    """
    from modeconn.align import permutation_spec
    from modeconn.align.endpoint import align_endpoint

    dev = _device(net, device)
    net.to(dev)
    x = _tensors(data, "data")[0].to(dev) if data is not None else None
    if input_shape is None:
        if x is None:
            raise ValueError("align_weights needs data= or input_shape= to trace the network")
        input_shape = tuple(x.shape[1:])
    if method == "activation" and x is None:
        raise ValueError("method='activation' correlates features: give data= (training inputs)")
    state_a = {k: v.to(dev) for k, v in _state(net, a, "a").items()}
    state_b = {k: v.to(dev) for k, v in _state(net, b, "b").items()}
    spec = permutation_spec(net, tuple(input_shape))
    check = x[:256] if x is not None else torch.randn(64, *input_shape, generator=torch.Generator().manual_seed(seed)).to(dev)
    aligned, report = align_endpoint(net, spec, state_a, state_b, method=method, x_train=x, x_check=check,
                                     samples=samples, batch_size=batch_size, max_iter=max_iter, seed=seed)
    section = {"method": method, "groups": [{"name": g.name, "size": g.size} for g in spec.groups],
               "units": spec.units, "per_endpoint": [{"index": 1, **report}], "seconds": report["seconds"],
               "fraction_in_place": report["fraction_in_place"], "max_logit_change": report["max_logit_change"]}
    return aligned, section


# --------------------------------------------------------------------------- paths


def _path(net: nn.Module, cfg: dict, ends: Sequence[Weights], device) -> Path:
    space, dev = ParameterSpace(net), _device(net, device)
    vectors = [_vector(net, space, w, name).to(dev) for w, name in zip(ends, ("a", "b"))]  # any mix of devices
    return build_path(cfg, space, vectors).to(dev)


def linear(net: nn.Module, a: Weights, b: Weights, *, points: int = 61, device=None) -> Path:
    """The straight segment (1 - t) a + t b, evaluated on ``points`` evenly spaced t."""
    return _path(net, {"name": "linear", "points": points}, (a, b), device)


def bezier(net: nn.Module, a: Weights, b: Weights, *, num_bends: int = 3, points: int = 61, device=None) -> Path:
    """Garipov's Bezier curve with ``num_bends - 2`` trainable bends, starting on the segment."""
    return _path(net, {"name": "bezier", "num_bends": num_bends, "points": points}, (a, b), device)


def polychain(net: nn.Module, a: Weights, b: Weights, *, num_bends: int = 3, points: int = 61,
              device=None) -> Path:
    """Garipov's polygonal chain through ``num_bends - 2`` trainable bends."""
    return _path(net, {"name": "polychain", "num_bends": num_bends, "points": points}, (a, b), device)


def simplex(net: nn.Module, *vertices: Weights, new_vertices: int = 1, lmbda: float = 0.0,
            device=None) -> SimplicialComplexPath:
    """Benton's simplex over the given (fixed) vertices plus ``new_vertices`` trainable ones at
    their centroid; ``lmbda`` weighs SPRO's volume term -lmbda * log(V + 1e-4) in training."""
    space, dev = ParameterSpace(net), _device(net, device)
    fixed = [_vector(net, space, w, f"vertex {i}").to(dev) for i, w in enumerate(vertices)]
    if not fixed:
        raise ValueError("simplex needs at least one vertex")
    centroid = torch.stack(fixed).mean(0)
    points = fixed + [centroid.clone() for _ in range(new_vertices)]
    free = [False] * len(fixed) + [True] * new_vertices
    path = SimplicialComplexPath(space, points, free, [list(range(len(points)))], lmbda=lmbda, eps=1e-4)
    return path.to(dev)


# --------------------------------------------------------------------------- training


def train_path(path: Path, net: nn.Module, train: Data, *, epochs: int, lr: float = 0.05, wd: float = 5e-4,
               momentum: float = 0.9, batch_size: int = 128, schedule: str = "garipov", samples: int = 1,
               limit_batches: int | None = None, seed: int = 0, device=None, work_dir: str | FilePath | None = None,
               progress: bool = True) -> Path:
    """Train the path's free points (bends, new vertices) as a ``method=bezier`` run does:
    Lightning, SGD with momentum and Garipov's schedule, CE + 0.5 wd ||phi(t)||^2 at a point
    drawn per minibatch (``samples`` points per step for simplexes). With ``work_dir`` each epoch
    is checkpointed there and a second call resumes; without, a temporary directory is used."""
    dev = _device(net, device)
    net.to(dev)
    path.to(dev)
    data = as_dataset(train, device=dev)
    recipe = {"epochs": int(epochs), "lr": float(lr), "wd": float(wd), "momentum": float(momentum),
              "batch_size": int(batch_size), "schedule": schedule, "limit_batches": limit_batches}
    trainer = {"accelerator": "gpu" if dev.type == "cuda" else "cpu", "devices": 1, "precision": "32-true",
               "progress": progress}
    from modeconn.training.path_trainer import fit_path

    with tempfile.TemporaryDirectory(prefix="modeconn-path-") as scratch:
        fit_path(path, net, data.x_train, data.y_train, recipe, seed=seed, work_dir=work_dir or scratch,
                 trainer_cfg=trainer, identity={"api": True}, samples=samples, name=f"{type(path).__name__}")
    return path


# --------------------------------------------------------------------------- evaluation


@dataclass
class Profile:
    """A path measured with the protocol: ``path`` (``t`` and one list per metric), ``summary``
    (start/end/min/max/avg/int per metric, ``length``, ``barrier``), and the ``alignment``
    report when one was given. Errors in percent, losses in nats."""

    path: dict[str, list[float]]
    summary: dict
    alignment: dict | None = None
    extra: dict = field(default_factory=dict)

    @property
    def record(self) -> dict:
        """results.json's ``path``, ``summary`` (and ``alignment``) sections."""
        out = {"path": self.path, "summary": self.summary}
        if self.alignment is not None:
            out["alignment"] = self.alignment
        return {**out, **self.extra}

    def to_json(self, file: str | FilePath) -> FilePath:
        write_json_atomic(FilePath(file), self.record)
        return FilePath(file)

    def plot(self, file: str | FilePath, title: str = "") -> FilePath:
        """Loss and error along the path (path.png of a run)."""
        return plot_profile(self.path, FilePath(file), title=title)

    def __repr__(self) -> str:
        b = self.summary["barrier"]
        return (f"Profile({len(self.path['t'])} points, test error barrier {b['test_err']:.2f} %, "
                f"train loss barrier {b['train_loss']:.4f})")


def evaluate(path: Path, net: nn.Module, *, train: Data, test: Data, device=None, wd: float = 5e-4,
             batch_size: int = 2048, bn_batch_size: int = 128, progress: bool = True,
             alignment: dict | None = None) -> Profile:
    """Measure ``net`` at every point of the path's grid as a run does: BN statistics recomputed
    on ``train`` at each point (batches of ``bn_batch_size``), train loss (NLL + 0.5 wd ||w||^2),
    train NLL/error, test NLL/error; summaries and barriers as results.json has them."""
    if path.coord_dim != 1:
        raise ValueError(f"{type(path).__name__} is not a 1-D path; use evaluate_at(path, net, coords, ...)")
    dev = _device(net, device)
    net.to(dev)
    path.to(dev)
    data = as_dataset(train, test, device=dev)
    profile, summary = evaluate_path(path, net, data, wd=wd, batch_size=batch_size, bn_batch_size=bn_batch_size,
                                     progress=progress)
    return Profile(profile, summary, alignment)


def evaluate_at(path: Path, net: nn.Module, coords: Tensor, *, train: Data, test: Data, device=None,
                wd: float = 5e-4, batch_size: int = 2048, bn_batch_size: int = 128) -> list[dict[str, float]]:
    """The protocol's metrics at each row of ``coords`` (e.g. a simplex's barycentric points)."""
    dev = _device(net, device)
    net.to(dev)
    path.to(dev)
    data = as_dataset(train, test, device=dev)
    out = []
    for c in torch.as_tensor(coords, dtype=torch.float32).reshape(-1, path.coord_dim):
        weights = path.space.unflatten(path.vector(c.to(dev)).detach())
        out.append(evaluate_point(net, weights, data, wd=wd, batch_size=batch_size,
                                  bn_batch_size=bn_batch_size).as_dict())
    return out


def save_json(record: Mapping, file: str | FilePath) -> None:
    """Write a record (e.g. ``profile.record``) as JSON, atomically."""
    write_json_atomic(FilePath(file), json.loads(json.dumps(record, default=float)))
