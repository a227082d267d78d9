"""Character-level next-token prediction from a plain UTF-8 corpus (``dataset=text``).

The default corpus is Debian's ``fortunes`` package (a few MB of quotations, installed
offline by ``make data`` like Fashion-MNIST): every plain file in
/usr/share/games/fortunes, in name order. ``dataset.root`` may name any file (or a
folder: its files in name order).

The text is split by position (the first ``1 - test_fraction`` for training, the rest
for testing; nothing is shuffled across the boundary), the vocabulary is the training
part's characters (sorted; characters seen only in the test part map to one extra
"unknown" id), and each split is cut into non-overlapping windows of ``context + 1``
characters: x = the first ``context`` ids, y = the next-character targets (N, T).
x is stored as float32 like every dataset's (exact for ids below 2**24); the models
cast it back. A classifier's metrics then hold per token: the loss is the mean NLL
per token and the error the next-token error %.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .base import Dataset, DatasetNotFound, cfg_get, finish

DEBIAN_FORTUNES = Path("/usr/share/games/fortunes")


def corpus_files(root: str | Path | None) -> list[Path]:
    """The corpus: ``root`` (a file, or a folder's files) or Debian's fortunes (no .dat/.u8 index files)."""
    where = Path(root).expanduser() if root else DEBIAN_FORTUNES
    if where.is_file():
        return [where]
    files = sorted(p for p in where.iterdir() if p.is_file() and not p.is_symlink()
                   and p.suffix not in (".dat", ".u8")) if where.is_dir() else []
    if not files:
        remedy = ("give dataset.root=FILE (any UTF-8 text)" if root
                  else "install Debian's fortunes (`make data` or `apt-get install fortunes`) or give dataset.root=FILE")
        raise DatasetNotFound(f"text: no corpus at {where}; {remedy}")
    return files


def windows(ids: torch.Tensor, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping (x, y) windows: y is x shifted by one character."""
    n = (len(ids) - 1) // context
    x = ids[: n * context].reshape(n, context)
    y = ids[1: n * context + 1].reshape(n, context)
    return x, y


def load_text(cfg: Mapping[str, Any]) -> Dataset:
    context = int(cfg_get(cfg, "context", 64))
    fraction = float(cfg_get(cfg, "test_fraction", 0.1))
    if context < 1 or not 0 < fraction < 1:
        raise ValueError(f"text: context must be >= 1 and test_fraction in (0, 1), got {context}, {fraction}")
    text = "".join(p.read_bytes().decode("utf-8", errors="replace") for p in corpus_files(cfg_get(cfg, "root")))
    cut = int(len(text) * (1 - fraction))
    train, test = text[:cut], text[cut:]
    vocab = sorted(set(train))
    index = {c: i for i, c in enumerate(vocab)}
    unknown = len(vocab)
    encode = lambda s: torch.tensor([index.get(c, unknown) for c in s], dtype=torch.int64)  # noqa: E731
    x_train, y_train = windows(encode(train), context)
    x_test, y_test = windows(encode(test), context)
    if len(x_train) == 0 or len(x_test) == 0:
        raise ValueError(f"text: a corpus of {len(text)} characters is too short for windows of {context + 1}")
    return finish("text", cfg, x_train, y_train, x_test, y_test, num_classes=len(vocab) + 1)
