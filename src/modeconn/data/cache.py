"""Where downloaded or generated data lives, and atomic .npz caching.

Everything goes under ``<home>/data``: the run's ``store_dir`` while ``load_dataset`` runs
(so data follows the store a config names), else ``$MODECONN_HOME`` (default ``~/.cache/modeconn``).
Writes go to a temporary file in the same folder followed by ``os.replace``, so
parallel runs (e.g. a joblib sweep) never see a half-written cache file.
"""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np


def modeconn_home() -> Path:
    """``$MODECONN_HOME`` if set, else ``~/.cache/modeconn``."""
    return Path(os.environ.get("MODECONN_HOME") or "~/.cache/modeconn").expanduser()


_HOME: contextvars.ContextVar[Path | None] = contextvars.ContextVar("modeconn_data_home", default=None)


def data_home() -> Path:
    """Default folder for datasets: ``<home>/data`` (see the module docstring)."""
    return (_HOME.get() or modeconn_home()) / "data"


@contextlib.contextmanager
def home_for_data(home: str | Path | None) -> Iterator[None]:
    """While inside, :func:`data_home` lies under ``home`` (a run's store_dir); None changes nothing."""
    token = _HOME.set(Path(home).expanduser() if home is not None else _HOME.get())
    try:
        yield
    finally:
        _HOME.reset(token)


def config_digest(params: Mapping) -> str:
    """Short stable hash of JSON-able generation parameters (names the cache file)."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def save_npz_atomic(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` via temp file + ``os.replace`` (no partial files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; make it a normal file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached_npz(path: Path, make: Callable[[], Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Load ``path`` if it is a readable .npz, else build it with ``make()`` and save it."""
    path = Path(path)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError):
            pass  # corrupt or foreign file: regenerate and overwrite
    arrays = {k: np.asarray(v) for k, v in make().items()}
    save_npz_atomic(path, arrays)
    return arrays
