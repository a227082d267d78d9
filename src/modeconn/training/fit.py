"""Run a LightningModule to completion, resuming from its last checkpoint if one exists.

Checkpoints go to a persistent work directory (the store's, for endpoints) so a
killed job picks up where it stopped when it is started again.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

for _name in ("lightning.pytorch", "lightning.fabric", "lightning"):
    logging.getLogger(_name).setLevel(logging.WARNING)
# Lightning 2.6 vs torch 2.14 noise that says nothing about the run.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")


def steps_per_epoch(loader, limit_batches: int | None) -> int:
    return min(len(loader), limit_batches) if limit_batches else len(loader)


def fit(module: L.LightningModule, *, epochs: int, work_dir: Path, trainer_cfg: Mapping,
        limit_batches: int | None = None, logger=False, callbacks=()) -> L.Trainer:
    """Train `module` for `epochs`, checkpointing every epoch into `work_dir`."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    # One rolling checkpoint (no monitor: top-1 is the latest epoch), overwritten in place.
    checkpoint = ModelCheckpoint(dirpath=work_dir, filename="last", save_top_k=1, every_n_epochs=1,
                                 enable_version_counter=False)
    accelerator, devices = trainer_cfg.get("accelerator", "cpu"), trainer_cfg.get("devices", 1)
    if accelerator == "gpu" and devices == 1 and torch.cuda.is_available():
        devices = [torch.cuda.current_device()]      # the GPU the app chose for this sweep job
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=devices,
        precision=trainer_cfg.get("precision", "32-true"),
        max_epochs=epochs,
        limit_train_batches=limit_batches or 1.0,
        logger=logger,
        callbacks=[checkpoint, *callbacks],
        enable_progress_bar=bool(trainer_cfg.get("progress", True)),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(work_dir),
    )
    last = work_dir / "last.ckpt"
    trainer.fit(module, ckpt_path=str(last) if last.exists() else None)
    return trainer
