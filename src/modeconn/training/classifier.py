"""Training one network from scratch: the endpoints every method connects."""
from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from modeconn.data import TensorLoader
from modeconn.training.schedule import lr_lambda


def epoch_seed(seed: int, epoch: int) -> int:
    """Global RNG seed for one epoch (dropout): a resumed run draws what an uninterrupted one does."""
    return (seed * 1_000_003 + epoch) % (2**63)


class ScheduledSGDModule(L.LightningModule):
    """SGD with momentum and a per-step LR schedule over an in-memory loader.

    Each epoch reseeds the loader and the global RNG from (seed, epoch), so a run
    resumed from an epoch checkpoint draws exactly what an uninterrupted one does.
    Subclasses say which parameters train and how the loss is computed.
    """

    optimizer_weight_decay = True   # False where the loss carries its own L2 term

    def __init__(self, loader: TensorLoader, *, lr: float, momentum: float, wd: float, total_steps: int,
                 schedule: str = "garipov", seed: int = 0):
        super().__init__()
        self.loader = loader
        self.lr, self.momentum, self.wd = lr, momentum, wd
        self.total_steps, self.schedule, self.seed = total_steps, schedule, seed

    def trainable_parameters(self):
        raise NotImplementedError

    def train_dataloader(self):
        return self.loader

    def on_train_epoch_start(self) -> None:
        self.loader.set_epoch(self.current_epoch)
        torch.manual_seed(epoch_seed(self.seed, self.current_epoch))

    def configure_optimizers(self):
        wd = self.wd if self.optimizer_weight_decay else 0.0
        opt = torch.optim.SGD(self.trainable_parameters(), lr=self.lr, momentum=self.momentum, weight_decay=wd)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(self.schedule, self.total_steps))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class ClassifierModule(ScheduledSGDModule):
    """Plain supervised training of one network (weight decay in the optimiser)."""

    def __init__(self, model: nn.Module, loader: TensorLoader, **kw):
        super().__init__(loader, **kw)
        self.model = model

    def trainable_parameters(self):
        return self.model.parameters()

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("train_acc", (logits.argmax(1) == y).float().mean(), on_step=False, on_epoch=True, prog_bar=True)
        return loss
