"""Endpoints from files: a network's weights read safely and checked against the network.

A researcher arrives with checkpoints saved elsewhere: ``.safetensors`` files, ``.pt``/``.pth``
state dicts, Lightning ``.ckpt`` files (the weights under ``state_dict`` with the module's
attribute as a prefix, ``model.``), DDP's ``module.`` prefix, a dict with the weights under
``model`` beside an epoch counter. All of them are read without running any code in the file:
safetensors holds only tensors, and ``torch.load(weights_only=True)`` refuses every pickled
object that is not a tensor or a plain container. Nested dicts are flattened to dotted keys
and the prefix that makes the most keys match the network is stripped.

Every problem is one line naming the file and the key (:class:`CheckpointError`, exit 2 on the
command line), found before any work: a run checks its files in :mod:`modeconn.validate`.
"""
from __future__ import annotations

import hashlib
import io
import pickle
import re
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from modeconn.errors import UserError

SAFETENSORS = (".safetensors",)
TORCH_FILES = (".pt", ".pth", ".ckpt", ".bin", ".tar")
# Buffers some savers leave out; their absence changes no output (BN's step counter).
OPTIONAL_KEYS = ("num_batches_tracked",)
_SHOW = 3


class CheckpointError(UserError):
    """A checkpoint file that cannot be used for this network; the message names file and key."""


def file_sha256(path: str | Path) -> str:
    """The file's sha256 (hex): which bytes a run connected, recorded in results.json."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class FileTensors(dict):
    """A file's tensors by dotted key; ``opaque`` names the pickled objects found beside them
    (dotted key -> class), which were never unpickled: inert stand-ins took their place."""

    def __init__(self, tensors: Mapping[str, Tensor], opaque: Mapping[str, str] | None = None):
        super().__init__(tensors)
        self.opaque = dict(opaque or {})


def read_tensors(path: str | Path) -> FileTensors:
    """Every tensor in the file, nested containers flattened to dotted keys (CPU).

    Never unpickles an arbitrary object. ``torch.load(weights_only=True)`` refuses every class
    it does not know; each one it names is allowed again only as an inert stand-in (a class of
    ours that stores nothing and runs nothing) and the load is retried, so a Lightning
    checkpoint whose ``hyper_parameters`` hold an OmegaConf config still gives its weights. The
    stand-ins' keys are kept in ``opaque``: :func:`match_state` refuses any among the weights.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS:
        from safetensors.torch import load_file
        try:
            return FileTensors(load_file(str(path), device="cpu"))
        except Exception as e:  # safetensors' errors: a truncated or foreign file
            raise CheckpointError(f"{path}: not a readable safetensors file ({_first_line(e)})") from e
    if suffix not in TORCH_FILES:
        raise CheckpointError(f"{path}: unknown checkpoint type {suffix!r}; use .safetensors or one of "
                              f"{', '.join(TORCH_FILES)} (a torch.save'd state dict)")
    obj = _load_inert(path)
    opaque: dict[str, str] = {}
    tensors = flatten_tensors(obj, opaque=opaque)
    if not tensors:
        what = f" (only {', '.join(sorted(set(opaque.values())))})" if opaque else ""
        raise CheckpointError(f"{path}: holds no tensors{what}; save model.state_dict() or a .safetensors file")
    return FileTensors(tensors, opaque)


_MAX_STAND_INS = 100


def _load_inert(path: Path):
    """``torch.load(weights_only=True)`` with inert stand-ins for the classes it refuses."""
    stand_ins: list[tuple[type, str]] = []
    while True:
        try:
            with torch.serialization.safe_globals(stand_ins):
                return torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            found = re.search(r"GLOBAL ([\w.]+)", str(e))
            full = found and (found.group(1) if "." in found.group(1) else f"builtins.{found.group(1)}")
            if full and len(stand_ins) < _MAX_STAND_INS and full not in {n for _, n in stand_ins}:
                stand_ins.append((_stand_in(full), full))
                continue
            name = found.group(1) if found else (stand_ins[-1][1] if stand_ins else "an object")
            where = _locate_global(path, {name, *(n for _, n in stand_ins)})
            key = f"key {where}: " if where else ""
            raise CheckpointError(f"{path}: {key}holds a pickled object ({name}) that only unpickling could read; "
                                  f"it is not unpickled (that could run code): save model.state_dict() or a "
                                  f".safetensors file") from e
        except Exception as e:  # a truncated zip, a foreign format
            raise CheckpointError(f"{path}: cannot be read as a torch checkpoint ({_first_line(e)})") from e


def flatten_tensors(obj, prefix: str = "", opaque: dict[str, str] | None = None) -> dict[str, Tensor]:
    """Tensors in nested dicts/lists as ``{dotted.key: tensor}``; stand-ins for pickled objects
    are noted in ``opaque`` (key -> class); other leaves (numbers, strings) are dropped."""
    if isinstance(obj, Tensor):
        return {prefix[:-1]: obj}
    if isinstance(obj, _Opaque):
        if opaque is not None:
            opaque[prefix[:-1] or "(top level)"] = obj.name
        return {}
    out: dict[str, Tensor] = {}
    if isinstance(obj, Mapping):
        items: Iterable = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return out
    for key, value in items:
        out.update(flatten_tensors(value, f"{prefix}{key}.", opaque))
    return out


def find_prefix(keys: Iterable[str], expected: Iterable[str]) -> str:
    """The prefix (``""``, ``"model."``, ``"state_dict.module."``, ...) under which ``keys``
    hold the most of ``expected``; the shortest among equals."""
    wanted = set(expected)
    counts: dict[str, int] = {}
    for key in keys:
        parts = key.split(".")
        for i in range(len(parts)):
            if ".".join(parts[i:]) in wanted:
                prefix = "".join(p + "." for p in parts[:i])
                counts[prefix] = counts.get(prefix, 0) + 1
    if not counts:
        return ""
    return max(counts, key=lambda p: (counts[p], -len(p)))


def match_state(model: nn.Module, tensors: Mapping[str, Tensor], source: str) -> dict[str, Tensor]:
    """``tensors`` as ``model``'s state dict: prefix stripped, checked key by key and shape by
    shape, floats cast to the model's dtypes. Raises :class:`CheckpointError` (one line: the
    file, the first offending key, and how many more)."""
    expected = model.state_dict()
    prefix = find_prefix(tensors, expected)
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    under = f" (under {prefix[:-1]!r})" if prefix else ""
    name = type(model).__name__
    opaque = getattr(tensors, "opaque", {})
    among = [k for k in opaque if k.startswith(prefix) or not prefix]
    if among:
        k = among[0]
        raise CheckpointError(f"{source}: key {k}: holds a pickled object ({opaque[k]}) among the weights, not a "
                              f"tensor; it is not unpickled (that could run code): save model.state_dict() or "
                              f"a .safetensors file{_more(among)}")
    missing = [k for k in expected if k not in state and not k.endswith(OPTIONAL_KEYS)]
    if missing:
        raise CheckpointError(f"{source}: missing key {missing[0]}{_more(missing)} that {name} has{under}")
    shapes = [k for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if shapes:
        k = shapes[0]
        raise CheckpointError(f"{source}: key {k}{under} has shape {tuple(state[k].shape)}, {name} needs "
                              f"{tuple(expected[k].shape)}{_more(shapes)}")
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        raise CheckpointError(f"{source}: unexpected key {prefix}{unexpected[0]}{_more(unexpected)}, "
                              f"which {name} does not have")
    out = {}
    for k, v in expected.items():
        t = state.get(k, v.detach().cpu())
        out[k] = t.to(v.dtype) if t.is_floating_point() and v.is_floating_point() else t
    bad = [k for k, v in out.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{source}: key {bad[0]} holds NaN or infinite values{_more(bad)}")
    return out


def load_checkpoint(model: nn.Module, path: str | Path) -> dict[str, Tensor]:
    """The state dict for ``model`` in the file at ``path`` (CPU tensors), checked; ``model``
    itself is not changed."""
    return match_state(model, read_tensors(path), str(path))


def _more(items: list) -> str:
    return f" (and {len(items) - 1} more)" if len(items) > 1 else ""


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# --------------------------------------------------------------------------- naming the key


class _Opaque:
    """Stands in for every object while :func:`_locate_global` walks a pickle: built from the
    pickle's arguments, never from the class the file names (nothing of it is imported)."""

    name = ""

    def __call__(self, *args, **kwargs) -> "_Opaque":   # what a REDUCE of a REDUCE calls (getattr(...)(...))
        out = _Opaque()
        out.name = self.name
        return out

    def __setstate__(self, state) -> None:
        pass

    def __setitem__(self, key, value) -> None:   # an OrderedDict's items, set one by one
        pass

    def append(self, value) -> None:
        pass

    def extend(self, values) -> None:
        pass


def _stand_in(full: str) -> type:
    """An inert class registered for weights_only loading under the name ``full``."""
    return type(full.rsplit(".", 1)[-1], (_Opaque,), {"name": full, "__init__": lambda self, *a, **k: None})


class _Dict(dict):
    """An OrderedDict's stand-in that keeps its items (a state dict carries ``_metadata``)."""


class _Locator(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        full = f"{module}.{name}"
        if full == "collections.OrderedDict":
            return _Dict                     # a state dict: keep its items to walk them
        return _stand_in(full)     # the name on the class: NEWOBJ builds instances without __init__

    def persistent_load(self, pid):
        return None


def _locate_global(path: Path, names: set[str]) -> str | None:
    """The dotted key under which a torch zip checkpoint holds an object built from one of the
    globals ``names`` (those weights_only refused), found by replaying its pickle with inert
    stand-ins (best effort; None when not found)."""
    short = {n.rsplit(".", 1)[-1] for n in names}
    try:
        with zipfile.ZipFile(path) as archive:
            pkl = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
            obj = _Locator(io.BytesIO(archive.read(pkl))).load()
    except Exception:
        return None

    def walk(node, where: str) -> str | None:
        if isinstance(node, _Opaque) and (node.name in names or node.name.rsplit(".", 1)[-1] in short):
            return where or "(top level)"
        items = node.items() if isinstance(node, Mapping) else enumerate(node) if isinstance(node, (list, tuple)) else ()
        for key, value in items:
            found = walk(value, f"{where}.{key}" if where else str(key))
            if found:
                return found
        return None

    return walk(obj, "")


# --------------------------------------------------------------------------- a run's files

# (input shape, classes) of the built-in datasets, so a run's files are checked against its
# network before any data is loaded; a folder's come from its recipe and class folders.
DATA_SHAPES = {"mnist1d": ((1, 40), 10), "digits": ((1, 8, 8), 10), "fashion_mnist": ((1, 28, 28), 10),
               "mnist": ((1, 28, 28), 10), "cifar10": ((3, 32, 32), 10), "cifar100": ((3, 32, 32), 100)}
# Methods that train networks of their own from scratch or from a shortened recipe, which
# files cannot stand in for.
NO_FILES = {"fge": "trains its start network from the recipe", "cut": "starts from a random initialisation",
            "toy": "has no network"}


def data_shape(cfg) -> tuple[tuple[int, ...], int] | None:
    """(input shape, class count) of the run's dataset without loading it (None if unknown)."""
    name = cfg.dataset.get("name")
    if name == "folder":
        from modeconn.data.folder import recipe, split_dirs
        from torchvision.datasets.folder import find_classes
        channels, size = recipe(cfg.dataset)
        train, _ = split_dirs(cfg.dataset)
        return (channels, *size), len(find_classes(str(train))[0])
    return DATA_SHAPES.get(name)


def checkpoint_problems(cfg) -> list[str]:
    """What is wrong with ``endpoint.checkpoints`` (one line per file, naming it and the key):
    files that are absent, unsafe or unreadable, too few for the method, or whose keys and
    shapes do not fit the run's network. Empty when the files can be used (or none are given)."""
    from omegaconf import DictConfig, OmegaConf

    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.create(dict(cfg))
    files = OmegaConf.select(cfg, "endpoint.checkpoints", default=None)
    if not files:
        return []
    if isinstance(files, str) or not OmegaConf.is_list(files) and not isinstance(files, (list, tuple)):
        return [f"endpoint.checkpoints={files!r}: must be a list of files, e.g. endpoint.checkpoints=[a.pt,b.pt]"]
    files = [str(f) for f in files]
    method = OmegaConf.select(cfg, "method.name", default=None)
    if method in NO_FILES:
        return [f"endpoint.checkpoints: method={method} {NO_FILES[method]}; it cannot use endpoints from files"]
    problems = []
    needed = OmegaConf.select(cfg, "method.endpoints", default=None)
    if isinstance(needed, int) and len(files) < needed:
        problems.append(f"endpoint.checkpoints has {len(files)} files; method={method} needs {needed}")
    model = _template(cfg, problems)
    for f in files:
        path = Path(f).expanduser()
        try:
            tensors = read_tensors(path)
            if model is not None:
                match_state(model, tensors, str(path))
        except CheckpointError as e:
            problems.append(str(e))
    return problems


def _template(cfg, problems: list[str]) -> nn.Module | None:
    """The run's network (CPU, seed 0) to check files against, or None when its shape is not
    known before the data is loaded (the files are then checked as the run loads them)."""
    from modeconn.data import DatasetNotFound
    from modeconn.models import build_arch

    try:
        shape = data_shape(cfg)
    except (DatasetNotFound, ValueError):
        return None        # the dataset's own check reports it when the run loads the data
    if shape is None:
        return None
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return build_arch(cfg.arch, shape[0], shape[1])
    except Exception as e:  # a custom class that does not build: the run reports it as arch=...
        problems.append(f"arch={cfg.arch.get('name')}: {_first_line(e)}")
        return None
