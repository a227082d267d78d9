"""Training any Path with parameters: curves, simplexes, subspaces, PAM all reuse this.

Garipov et al.: per minibatch draw coordinates from the path's own distribution
(t ~ U(0,1) for curves), apply the weights at that point to the network with BN
in batch-statistics mode, and minimise CE + 0.5 * wd * ||phi(t)||^2 (the penalty
on the sampled point; the optimiser's own weight decay is 0). Benton et al.'s
SPRO draws `samples` points per minibatch (the loss is their mean) and adds the
path's own `penalty()` (the log-volume term) once per step.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn
from omegaconf import OmegaConf
from torch.func import functional_call

from modeconn.data import TensorLoader
from modeconn.paths.base import Path
from modeconn.training.classifier import ScheduledSGDModule
from modeconn.training.endpoints import arch_spec, dataset_spec
from modeconn.training.fit import fit, steps_per_epoch


class PathModule(ScheduledSGDModule):
    optimizer_weight_decay = False

    def __init__(self, path: Path, model: nn.Module, loader: TensorLoader, samples: int = 1, **kw):
        super().__init__(loader, **kw)
        if samples < 1:
            raise ValueError(f"samples per step must be >= 1, got {samples}")
        self.path = path
        self.samples = samples
        self._net = [model]  # a template, not a submodule: its own weights never train or checkpoint

    def trainable_parameters(self):
        return [p for p in self.path.parameters() if p.requires_grad]

    def loss_at(self, coords: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CE of the network at `coords` plus the L2 penalty on that point; also the logits."""
        weights, sq_norm = self.path.weights_and_sq_norm(coords)  # one fused pass per tensor (paths/base.py)
        net = self._net[0].train()
        logits = functional_call(net, weights, (x,))
        loss = F.cross_entropy(logits, y) + 0.5 * self.wd * sq_norm
        return loss, logits

    def training_step(self, batch, batch_idx):
        x, y = batch
        coords = self.path.sample_coords(self.samples).to(x.device)
        loss, correct = 0.0, 0.0
        for c in coords:
            point_loss, logits = self.loss_at(c, x, y)
            loss = loss + point_loss / self.samples
            correct = correct + (logits.argmax(1) == y).float().mean() / self.samples
        loss = loss + self.path.penalty()
        self.log("path_train_loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        self.log("path_train_acc", correct, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.path.project_()


def train_path(path: Path, ctx, recipe=None, work_dir=None, samples: int = 1, name: str = "path") -> None:
    """Train `path`'s free points with `recipe` (default `ctx.cfg.method.train`), resumably
    (checkpoints in `work_dir`, default the run's checkpoints/path); `samples` points per step.
    `name` says what trains in log lines (e.g. "simplex 0 vertex 2")."""
    recipe = recipe or ctx.cfg.method.train
    # With the path's starting state (its anchors: the endpoints, aligned or not), this
    # determines the training: a checkpoint made with anything else is not resumed.
    identity = {"dataset": dataset_spec(ctx.cfg), "arch": arch_spec(ctx.cfg),
                "precision": str(ctx.cfg.trainer.get("precision", "32-true"))}
    fit_path(path, ctx.model, ctx.data.x_train, ctx.data.y_train, OmegaConf.to_container(recipe, resolve=True),
             seed=int(ctx.cfg.seed), augment=ctx.data.augment,
             work_dir=work_dir or ctx.out_dir / "checkpoints" / "path", trainer_cfg=ctx.cfg.trainer,
             identity=identity, samples=samples, name=name, logger=ctx.tracker.lightning_logger())


def fit_path(path: Path, model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Mapping, *, seed: int,
             work_dir, trainer_cfg: Mapping, identity: Mapping | None = None, augment: str | None = None,
             samples: int = 1, name: str = "path", logger=False) -> None:
    """Train `path` on (x, y) with `recipe` (epochs, lr, wd, momentum, batch_size, schedule,
    limit_batches): the run's trainer and the Python API (`modeconn.train_path`) share this."""
    recipe = dict(recipe)
    recipe.setdefault("limit_batches", None)
    loader = TensorLoader(x, y, recipe["batch_size"], shuffle=True, augment=augment, seed=seed)
    total = steps_per_epoch(loader, recipe["limit_batches"]) * recipe["epochs"]
    module = PathModule(path, model, loader, samples=samples, lr=recipe["lr"], momentum=recipe["momentum"],
                        wd=recipe["wd"], total_steps=total, schedule=recipe["schedule"], seed=seed)
    identity = {"path": type(path).__name__, "recipe": recipe, "samples": samples, "seed": seed,
                **dict(identity or {})}
    fit(module, epochs=recipe["epochs"], work_dir=work_dir, trainer_cfg=trainer_cfg, identity=identity, name=name,
        limit_batches=recipe["limit_batches"], logger=logger)
