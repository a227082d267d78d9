"""Training one network from scratch: the endpoints every method connects."""
from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from modeconn.data import TensorLoader
from modeconn.training.schedule import lr_lambda


def sgd(params, *, lr: float, momentum: float, weight_decay: float = 0.0) -> torch.optim.SGD:
    """The suite's SGD: PyTorch's fused kernel where the parameters' device has one (CPU, CUDA),
    the same numbers as the per-tensor loop (bit-identical on CPU) in one pass over the
    weights: a 784-512-512-10 MLP's step 0.56 -> 0.20 ms on one core."""
    params = list(params)
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, fused=fused or None)


def epoch_seed(seed: int, epoch: int) -> int:
    """Global RNG seed for one epoch (dropout): a resumed run draws what an uninterrupted one does."""
    return (seed * 1_000_003 + epoch) % (2**63)


class ScheduledSGDModule(L.LightningModule):
    """SGD with momentum and a per-step LR schedule over an in-memory loader.

    Each epoch reseeds the loader and the global RNG from (seed, epoch), so a run
    resumed from an epoch checkpoint draws exactly what an uninterrupted one does.
    Subclasses say which parameters train and how the loss is computed.

    A training that continues another one (a spawned child, a longer parent prefix) starts
    at ``start_epoch``: its epochs, data order and LR schedule are those of epochs
    ``start_epoch..`` of a training from scratch, and ``momentum_buffers`` (by parameter
    name) are the SGD momentum it had reached there.
    """

    optimizer_weight_decay = True   # False where the loss carries its own L2 term

    def __init__(self, loader: TensorLoader, *, lr: float, momentum: float, wd: float, total_steps: int,
                 schedule: str = "garipov", seed: int = 0, start_epoch: int = 0, step_offset: int = 0,
                 momentum_buffers: dict[str, torch.Tensor] | None = None):
        super().__init__()
        self.loader = loader
        self.lr, self.momentum, self.wd = lr, momentum, wd
        self.total_steps, self.schedule, self.seed = total_steps, schedule, seed
        self.start_epoch, self.step_offset = start_epoch, step_offset
        self.momentum_buffers = momentum_buffers or {}

    def trainable_parameters(self):
        raise NotImplementedError

    def train_dataloader(self):
        return self.loader

    def on_train_epoch_start(self) -> None:
        epoch = self.current_epoch + self.start_epoch
        self.loader.set_epoch(epoch)
        torch.manual_seed(epoch_seed(self.seed, epoch))

    def configure_optimizers(self):
        wd = self.wd if self.optimizer_weight_decay else 0.0
        opt = sgd(self.trainable_parameters(), lr=self.lr, momentum=self.momentum, weight_decay=wd)
        factor, offset = lr_lambda(self.schedule, self.total_steps), self.step_offset
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor if not offset else (lambda step: factor(step + offset)))
        if self.momentum_buffers:
            for name, p in self.named_parameters():
                key = name.removeprefix("model.")
                if key in self.momentum_buffers:
                    opt.state[p]["momentum_buffer"] = self.momentum_buffers[key].to(p.device, p.dtype).clone()
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def momentum_state(self) -> dict[str, torch.Tensor]:
        """The SGD momentum of each parameter (by the network's names) where training stopped."""
        opt = self.trainer.optimizers[0]
        return {name.removeprefix("model."): opt.state[p]["momentum_buffer"].detach().cpu().clone()
                for name, p in self.named_parameters() if "momentum_buffer" in opt.state.get(p, {})}


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
