"""Fast geometric ensembling (Garipov et al. 2018): cyclic-LR training from a pre-trained
network, with a snapshot of the weights at each cycle's low point.

Within a cycle of `cycle` epochs (even), the learning rate changes every iteration,
linearly from lr_1 to lr_2 over the first half and back to lr_1 over the second
(dnn-mode-connectivity's fge.py); the snapshot is taken after the first half, where
the LR is lr_2. Training runs through `training.fit.fit`, so it checkpoints every
epoch (snapshots included) into its work directory and resumes after a kill.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import lightning as L
import torch
from torch import nn

from modeconn.data import Dataset, TensorLoader
from modeconn.training.classifier import ClassifierModule, sgd
from modeconn.training.fit import fit, steps_per_epoch


def cyclic_lr(step: int, cycle_iters: int, lr_1: float, lr_2: float) -> float:
    """The LR at iteration `step` of a cycle of `cycle_iters` iterations (Garipov's cyclic_learning_rate)."""
    t = (step % cycle_iters) / cycle_iters
    if t <= 0.5:
        return (1.0 - 2.0 * t) * lr_1 + 2.0 * t * lr_2
    return (2.0 - 2.0 * t) * lr_2 + (2.0 * t - 1.0) * lr_1


def fge_cycles(epochs: int, start_epochs: int, cycle: int, cycles: int | None = None) -> int:
    """Cycles that fit into the rest of one model's budget (`epochs - start_epochs`), at least 1."""
    if cycles is not None:
        if int(cycles) < 1:
            raise ValueError(f"method.cycles must be >= 1, got {cycles}")
        return int(cycles)
    return max(1, (int(epochs) - int(start_epochs)) // int(cycle))


def check_cycle(cycle: int) -> int:
    if int(cycle) < 2 or int(cycle) % 2:
        raise ValueError(f"method.cycle must be an even number of epochs >= 2, got {cycle}")
    return int(cycle)


class FGEModule(ClassifierModule):
    """ClassifierModule with the per-iteration cyclic LR instead of the endpoint schedule."""

    def __init__(self, model: nn.Module, loader: TensorLoader, *, lr_1: float, lr_2: float, momentum: float,
                 wd: float, cycle_iters: int, total_steps: int, seed: int = 0):
        super().__init__(model, loader, lr=lr_1, momentum=momentum, wd=wd, total_steps=total_steps,
                         schedule="constant", seed=seed)
        self.lr_1, self.lr_2, self.cycle_iters = lr_1, lr_2, cycle_iters

    def configure_optimizers(self):
        opt = sgd(self.model.parameters(), lr=self.lr_1, momentum=self.momentum, weight_decay=self.wd)
        factor = lambda step: cyclic_lr(step, self.cycle_iters, self.lr_1, self.lr_2) / self.lr_1
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class SnapshotCallback(L.Callback):
    """Flat weight vectors (CPU) taken at the end of epochs where (epoch + 1) % cycle == cycle / 2:
    the middle of each cycle. Part of the checkpoint, so a resumed run keeps earlier snapshots."""

    def __init__(self, flatten, cycle: int):
        self.flatten, self.cycle = flatten, cycle
        self.snapshots: list[torch.Tensor] = []
        self.epochs: list[int] = []
        self.lrs: list[float] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        epoch = trainer.current_epoch
        if (epoch + 1) % self.cycle == self.cycle // 2 and epoch not in self.epochs:
            self.snapshots.append(self.flatten(pl_module.model.state_dict()).detach().cpu().clone())
            self.epochs.append(epoch)
            self.lrs.append(float(trainer.optimizers[0].param_groups[0]["lr"]))

    def state_dict(self) -> dict:
        return {"snapshots": self.snapshots, "epochs": self.epochs, "lrs": self.lrs}

    def load_state_dict(self, state_dict: dict) -> None:
        self.snapshots = list(state_dict["snapshots"])
        self.epochs = list(state_dict["epochs"])
        self.lrs = list(state_dict["lrs"])


def train_fge(model: nn.Module, data: Dataset, flatten, *, cycle: int, cycles: int, lr_1: float, lr_2: float,
              momentum: float, wd: float, batch_size: int, limit_batches: int | None, seed: int,
              work_dir: Path, trainer_cfg, identity: Mapping) -> tuple[list[torch.Tensor], dict]:
    """Run `cycles` cycles of FGE from `model`'s current weights (trained in place); `identity`
    is what determines the run besides those weights (see `training.fit.fit`).

    Returns the snapshots (flat CPU vectors, one per cycle) and a description of the run.
    """
    cycle = check_cycle(cycle)
    loader = TensorLoader(data.x_train, data.y_train, batch_size, shuffle=True, augment=data.augment, seed=seed)
    per_epoch = steps_per_epoch(loader, limit_batches)
    epochs = cycle * int(cycles)
    module = FGEModule(model, loader, lr_1=lr_1, lr_2=lr_2, momentum=momentum, wd=wd, cycle_iters=cycle * per_epoch,
                       total_steps=per_epoch * epochs, seed=seed)
    snap = SnapshotCallback(flatten, cycle)
    trainer = fit(module, epochs=epochs, work_dir=work_dir, trainer_cfg=trainer_cfg, identity=identity, name="FGE",
                  limit_batches=limit_batches, callbacks=[snap])
    final = {k: float(v) for k, v in trainer.callback_metrics.items()}
    info = {"epochs": epochs, "steps": per_epoch * epochs, "snapshot_epochs": list(snap.epochs),
            "snapshot_lrs": list(snap.lrs), "final_train_metrics": final}
    return list(snap.snapshots), info
