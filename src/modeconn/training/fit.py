"""Run a LightningModule to completion, resuming from its last checkpoint when it is this training's.

Checkpoints go to a persistent work directory (the store's, for endpoints; the run
dir's, for paths) so a killed job picks up where it stopped when it is started again.
A work directory can outlive the run that made it (a re-run with another seed or recipe
into the same run dir), so each checkpoint is kept beside the *identity* of its training:
what determines it (config, recipe, endpoint keys) and a digest of the weights it started
from. A checkpoint whose identity differs is discarded with a log line, never resumed.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from modeconn.errors import CorruptCheckpoint, TrainingDiverged
from modeconn.heap import hold_freed_memory
from modeconn.progress import interactive
from modeconn.store import spec_key
from modeconn.training.accel import compile_step

for _name in ("lightning.pytorch", "lightning.fabric", "lightning"):
    logging.getLogger(_name).setLevel(logging.WARNING)
# Lightning 2.6 vs torch 2.14 noise that says nothing about the run.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
# Where SLURM is installed, Lightning warns on every fit that srun is not used; a sweep job under
# submitit runs inside srun already, and a local run is meant to be local.
warnings.filterwarnings("ignore", message=r"The `srun` command is available on your system")

log = logging.getLogger("modeconn")
CHECKPOINT = "last.ckpt"
IDENTITY = "identity.json"


def steps_per_epoch(loader, limit_batches: int | None) -> int:
    return min(len(loader), limit_batches) if limit_batches else len(loader)


def state_digest(module: torch.nn.Module) -> str:
    """sha256 of a module's tensors (names, dtypes, shapes, bytes): the weights a training starts
    from, and buffers rebuilt rather than checkpointed (a random cut's projection), which count too."""
    h = hashlib.sha256()
    tensors = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    for name, tensor in sorted(tensors.items()):
        t = tensor.detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:20]


def _differences(old: Mapping, new: Mapping, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two identities."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


def _check_checkpoint(work_dir: Path, identity: dict, name: str) -> Path | None:
    """The checkpoint to resume from, or None. Discards one made by another training; raises
    :class:`CorruptCheckpoint` (with the file to delete) for one that cannot be read."""
    last, id_file = work_dir / CHECKPOINT, work_dir / IDENTITY
    if not last.exists():
        return None
    try:
        earlier = json.loads(id_file.read_text())
    except (OSError, ValueError):
        earlier = None
    if not isinstance(earlier, dict) or earlier.get("key") != identity["key"]:
        if isinstance(earlier, dict):
            differs = _differences(earlier.get("identity", {}), identity["identity"])
            differs += ["the starting weights"] if earlier.get("start") != identity["start"] else []
            why = f"differs in {', '.join(differs[:8])}"
        else:
            why = "no identity recorded beside it"
        log.warning("%s: discarding checkpoint %s made by another training (%s); training from the start",
                    name, last, why)
        last.unlink()
        return None
    try:
        with zipfile.ZipFile(last) as archive:
            bad = archive.testzip()
        if bad is not None:
            raise zipfile.BadZipFile(f"member {bad} fails its CRC check")
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise CorruptCheckpoint(f"{name}: checkpoint {last} is corrupt ({e}); delete it (rm {last}) "
                                f"to restart this training from its start") from e
    return last


class TrainingMonitor(L.Callback):
    """Stops a training whose loss is NaN/inf before that epoch is checkpointed (the check is
    one flag on the device per step, read once an epoch), says when a training resumes, and,
    off a terminal, logs one line per epoch instead of a progress bar."""

    def __init__(self, name: str, epochs: int, lines: bool):
        self.name, self.epochs, self.lines = name, epochs, lines
        self.finite: torch.Tensor | None = None
        self.started = time.perf_counter()

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch > 0:
            log.info("%s: resuming from its checkpoint at epoch %d/%d", self.name, trainer.current_epoch, self.epochs)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.started = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, Mapping) else outputs
        if loss is None:
            return
        finite = torch.isfinite(loss.detach()).all()
        self.finite = finite if self.finite is None else self.finite & finite

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch + 1
        if self.finite is not None and not bool(self.finite):
            lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
            raise TrainingDiverged(f"{self.name}: the loss became NaN or infinite in epoch {epoch}/{self.epochs} "
                                   f"(learning rate {lr:.3g}); nothing was stored: lower the learning rate")
        self.finite = None
        if self.lines:
            metrics = "  ".join(f"{k} {float(v):.4f}" for k, v in sorted(trainer.callback_metrics.items())
                                if math.isfinite(float(v)))
            log.info("%s: epoch %d/%d  %s  (%.1f s)", self.name, epoch, self.epochs, metrics,
                     time.perf_counter() - self.started)


def fit(module: L.LightningModule, *, epochs: int, work_dir: Path, trainer_cfg: Mapping, identity: Mapping,
        name: str, limit_batches: int | None = None, logger=False, callbacks=()) -> L.Trainer:
    """Train `module` for `epochs`, checkpointing every epoch into `work_dir`.

    `identity` is what determines this training besides its starting weights (JSON-able:
    recipe, seed, data, endpoint keys); `name` says what trains in log lines and errors.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    identity = {"identity": json.loads(json.dumps(identity, default=str)), "start": state_digest(module)}
    identity["key"] = spec_key({"identity": identity["identity"], "start": identity["start"]})
    last = _check_checkpoint(work_dir, identity, name)
    if last is None:
        (work_dir / IDENTITY).write_text(json.dumps(identity, indent=1, sort_keys=True))
    # One rolling checkpoint (no monitor: top-1 is the latest epoch), overwritten in place.
    checkpoint = ModelCheckpoint(dirpath=work_dir, filename="last", save_top_k=1, every_n_epochs=1,
                                 enable_version_counter=False)
    accelerator, devices = trainer_cfg.get("accelerator", "cpu"), trainer_cfg.get("devices", 1)
    if accelerator == "gpu" and devices == 1 and torch.cuda.is_available():
        devices = [torch.cuda.current_device()]      # the GPU the app chose for this sweep job
    show = bool(trainer_cfg.get("progress", True))
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=devices,
        precision=trainer_cfg.get("precision", "32-true"),
        max_epochs=epochs,
        limit_train_batches=limit_batches or 1.0,
        logger=logger,
        callbacks=[checkpoint, TrainingMonitor(name, epochs, lines=show and not interactive()), *callbacks],
        enable_progress_bar=show and interactive(),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(work_dir),
    )
    compile_step(module, trainer_cfg)
    hold_freed_memory()       # steps that allocate weight-sized tensors afresh fault no pages in
    trainer.fit(module, ckpt_path=str(last) if last is not None else None)
    return trainer
