"""Content-addressed store of trained endpoint networks.

Endpoints are expensive to train and are shared by every later run and by
concurrent sweep jobs (possibly on a shared file system under SLURM), so each
one is trained exactly once and kept under a key derived from everything that
determines its weights.

Layout under the store root::

    endpoints/<key>/weights.safetensors   state_dict (no pickle: safe to load)
    endpoints/<key>/meta.json             caller meta + spec, key, created, versions
    endpoints/.tmp-<key>-<uuid>/          a writer in progress (or killed); ignored
    partial/<key>/                        scratch for a training in progress (resume)
    locks/<key>.lock                      OS file lock serialising writers of <key>

An entry exists iff ``endpoints/<key>/`` exists; it is created by renaming a
fully written and fsynced temp dir, so readers never see half an entry.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import numbers
import os
import re
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from modeconn.errors import TrainingDiverged

__all__ = [
    "CorruptEntry",
    "EndpointStore",
    "Entry",
    "IncompatibleCheckpoint",
    "default_home",
    "load_state",
    "spec_key",
]

WEIGHTS = "weights.safetensors"
META = "meta.json"
_KEY_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
_SHOW = 5  # how many offending names an error message lists per category


def default_home() -> Path:
    """Store root: ``$MODECONN_HOME`` (point it at shared storage for sweeps), else ``~/.cache/modeconn``."""
    env = os.environ.get("MODECONN_HOME")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "modeconn"


# --------------------------------------------------------------------------- keys


def _canonical(obj: Any, where: str = "spec") -> Any:
    """Reduce ``obj`` to plain JSON types so equal specs hash equally.

    Tuples / ListConfig become lists and numpy-like scalars become Python
    scalars; anything else that JSON cannot represent faithfully is refused
    rather than silently stringified (which could make distinct specs collide).
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: mapping keys must be str, got {k!r} ({type(k).__name__})")
            out[k] = _canonical(v, f"{where}.{k}")
        return out
    if isinstance(obj, Sequence) and not isinstance(obj, (bytes, bytearray)):
        return [_canonical(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    item = getattr(obj, "item", None)  # numpy bool_ and other 0-d scalars
    if callable(item) and not isinstance(obj, Tensor):
        with contextlib.suppress(Exception):
            value = item()
            if isinstance(value, (bool, int, float, str)):
                return value
    raise TypeError(f"{where}: cannot canonicalise {type(obj).__name__} value {obj!r} for spec_key")


def _canonical_json(spec: Mapping) -> str:
    # json writes floats with repr(), the shortest round-tripping form: stable across runs and platforms.
    return json.dumps(_canonical(spec), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def spec_key(spec: Mapping) -> str:
    """Key of the endpoint a spec describes: first 20 hex chars of sha256 of its canonical JSON.

    ``spec`` must hold everything that determines the trained weights (dataset
    options, arch, recipe, seed) and nothing that does not (paths, logging), or
    identical networks get trained twice / different ones get confused.
    Note ``1`` and ``1.0`` are different values here, as in JSON.
    """
    if not isinstance(spec, Mapping):
        raise TypeError(f"spec must be a mapping, got {type(spec).__name__}")
    return hashlib.sha256(_canonical_json(spec).encode("ascii")).hexdigest()[:20]


# ------------------------------------------------------------------------ helpers


def _versions() -> dict[str, str]:
    """Library versions recorded with each entry, to explain later numerical differences."""
    from importlib import metadata

    out = {}
    for dist, fallback in (("torch", torch.__version__), ("safetensors", None), ("modeconn", None)):
        try:
            out[dist] = metadata.version(dist)
        except Exception:  # not installed as a distribution (e.g. plain source checkout)
            out[dist] = fallback or "unknown"
    return out


def _fsync_path(path: Path, directory: bool = False) -> None:
    """Flush a file (or a dir's entries) to disk so a crash after rename cannot expose an empty file."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:
            return  # some platforms / file systems cannot open directories; best effort
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise  # directory fsync is unsupported on some file systems; file fsync is not optional
    finally:
        os.close(fd)


def _prepare_state(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Detached, contiguous CPU copies: safetensors needs contiguous tensors without shared
    storage (tied weights), and the entry must not alias live model parameters."""
    out: dict[str, Tensor] = {}
    for name, t in state.items():
        if not isinstance(name, str):
            raise TypeError(f"state keys must be str, got {name!r}")
        if not isinstance(t, Tensor):
            raise TypeError(f"state[{name!r}] is {type(t).__name__}, not a Tensor")
        if t.layout != torch.strided or t.is_meta:
            raise TypeError(f"state[{name!r}] must be a dense, materialised tensor (got {t.layout}, {t.device})")
        out[name] = t.detach().to("cpu", copy=True).contiguous()
    return out


class CorruptEntry(RuntimeError):
    """An entry directory exists but cannot be read; it is never silently retrained over."""


# -------------------------------------------------------------------------- store


@dataclass
class Entry:
    """A stored endpoint: its key, ``state_dict`` (CPU tensors) and JSON metadata."""

    key: str
    state: dict[str, Tensor]
    meta: dict


class EndpointStore:
    """Train-once store of endpoint networks, safe for concurrent processes on one (shared) file system."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root is not None else default_home()

    def __repr__(self) -> str:
        return f"EndpointStore({str(self.root)!r})"

    @property
    def _endpoints(self) -> Path:
        return self.root / "endpoints"

    @staticmethod
    def _check_key(key: str) -> str:
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise ValueError(f"invalid store key {key!r}: use letters, digits, '_', '-', '.' (not leading '.')")
        return key

    def entry_dir(self, key: str) -> Path:
        """Final directory of an entry (exists iff the entry does)."""
        return self._endpoints / self._check_key(key)

    def work_dir(self, key: str) -> Path:
        """Persistent scratch for training ``key`` (e.g. Lightning checkpoints), so a killed
        job resumes instead of restarting; removed after a successful put. Not created here."""
        return self.root / "partial" / self._check_key(key)

    def _lock(self, key: str) -> FileLock:
        # OS (flock) lock: released by the kernel when its holder dies, so a killed job cannot deadlock others.
        path = self.root / "locks" / f"{self._check_key(key)}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(path))

    # ---------------------------------------------------------------- reading

    def get(self, key: str) -> Entry | None:
        """Load an entry, or ``None`` if absent. Raises :class:`CorruptEntry` if it exists but is unreadable."""
        d = self.entry_dir(key)
        if not d.is_dir():
            return None
        hint = f"delete {d} to have it recreated"
        try:
            meta = json.loads((d / META).read_text(encoding="utf-8"))
            if not isinstance(meta, dict):
                raise ValueError(f"expected a JSON object, got {type(meta).__name__}")
        except Exception as e:
            raise CorruptEntry(f"corrupt endpoint entry {d}: cannot read {META} ({e}); {hint}") from e
        if meta.get("key", key) != key:
            raise CorruptEntry(f"corrupt endpoint entry {d}: {META} is for key {meta.get('key')!r}; {hint}")
        try:
            state = load_file(str(d / WEIGHTS), device="cpu")
        except Exception as e:
            raise CorruptEntry(f"corrupt endpoint entry {d}: cannot load {WEIGHTS} ({e}); {hint}") from e
        return Entry(key=key, state=state, meta=meta)

    def keys(self) -> list[str]:
        """Keys of complete entries (temp dirs of unfinished writers are skipped)."""
        if not self._endpoints.is_dir():
            return []
        return sorted(
            p.name
            for p in self._endpoints.iterdir()
            if not p.name.startswith(".") and (p / WEIGHTS).is_file() and (p / META).is_file()
        )

    # ---------------------------------------------------------------- writing

    def put(self, key: str, state: Mapping[str, Tensor], meta: Mapping) -> Entry:
        """Store an entry atomically. Content-addressed: if ``key`` already exists the
        existing entry wins and is returned unchanged."""
        with self._lock(key):
            return self._put_locked(key, state, meta)

    def _put_locked(self, key: str, state: Mapping[str, Tensor], meta: Mapping) -> Entry:
        # Holding the key lock means every other writer of this key is dead, so their temp dirs are garbage.
        self._remove_stale_tmp(key)
        final = self.entry_dir(key)
        existing = self.get(key)
        if existing is not None:
            shutil.rmtree(self.work_dir(key), ignore_errors=True)
            return existing

        tensors = _prepare_state(state)
        full_meta = dict(meta)
        full_meta.update(
            key=key,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            versions=_versions(),
        )
        meta_text = json.dumps(full_meta, sort_keys=True, indent=2)  # fail on bad meta before touching disk

        self._endpoints.mkdir(parents=True, exist_ok=True)
        tmp = self._endpoints / f".tmp-{key}-{uuid.uuid4().hex}"
        try:
            tmp.mkdir()
            save_file(tensors, str(tmp / WEIGHTS))
            _fsync_path(tmp / WEIGHTS)
            with open(tmp / META, "w", encoding="utf-8") as f:
                f.write(meta_text)
                f.flush()
                os.fsync(f.fileno())
            _fsync_path(tmp, directory=True)
            try:
                os.rename(tmp, final)
            except OSError:
                if not final.is_dir():
                    raise
                # Another writer (not using the lock) got there first: theirs is the entry.
                shutil.rmtree(tmp, ignore_errors=True)
                theirs = self.get(key)
                if theirs is None:  # vanished in between; nothing sensible left to do but report
                    raise
                shutil.rmtree(self.work_dir(key), ignore_errors=True)
                return theirs
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_path(self._endpoints, directory=True)
        shutil.rmtree(self.work_dir(key), ignore_errors=True)
        return Entry(key=key, state=tensors, meta=json.loads(meta_text))

    @staticmethod
    def _drop_useless_work(work: Path, error: BaseException) -> None:
        """After a failed ``create``: keep a checkpoint to resume from, but not an empty work
        dir, nor the checkpoints of a diverged training (resuming them diverges again)."""
        if isinstance(error, TrainingDiverged):
            shutil.rmtree(work, ignore_errors=True)
            return
        with contextlib.suppress(OSError):
            if not any(p.name != "identity.json" for p in work.iterdir()):
                shutil.rmtree(work)

    def _remove_stale_tmp(self, key: str) -> None:
        if self._endpoints.is_dir():
            for p in self._endpoints.glob(f".tmp-{key}-*"):
                shutil.rmtree(p, ignore_errors=True)

    def get_or_create(
        self,
        spec: Mapping,
        create: Callable[[Path], tuple[Mapping[str, Tensor], Mapping]],
    ) -> tuple[Entry, bool]:
        """Return ``(entry, cached)`` for ``spec``, calling ``create(work_dir)`` only if no entry exists.

        The key's file lock is held across check-create-put so concurrent jobs
        asking for the same endpoint train it once: the others block, then load
        it (``cached=True``). ``cached=False`` only in the process that created it.
        ``work_dir`` survives a killed ``create`` so the next attempt can resume.
        """
        key = spec_key(spec)
        entry = self.get(key)
        if entry is not None:
            return entry, True
        with self._lock(key):
            entry = self.get(key)  # created while we waited for the lock
            if entry is not None:
                return entry, True
            work = self.work_dir(key)
            work.mkdir(parents=True, exist_ok=True)
            try:
                state, meta = create(work)
            except BaseException as error:
                self._drop_useless_work(work, error)
                raise
            meta = dict(meta)
            meta["spec"] = _canonical(spec)
            return self._put_locked(key, state, meta), False


# ------------------------------------------------------------------------ loading


class IncompatibleCheckpoint(ValueError):
    """A stored state does not fit the model (stale cache, wrong arch or width)."""


def load_state(model: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """Strictly load ``state`` into ``model``.

    Checked up front so a mismatch raises one readable
    :class:`IncompatibleCheckpoint` (naming ``source``) and leaves the model
    untouched, instead of torch's partial load plus a long error.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:

        def part(label: str, items: list[str]) -> str:
            more = f", ... (+{len(items) - _SHOW} more)" if len(items) > _SHOW else ""
            return f"{label} ({len(items)}): " + ", ".join(items[:_SHOW]) + more

        parts = [
            part(label, items)
            for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes))
            if items
        ]
        raise IncompatibleCheckpoint(
            f"{source}: state does not fit {type(model).__name__}; " + "; ".join(parts)
        )
    model.load_state_dict(dict(state), strict=True)
