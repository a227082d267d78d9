"""Dropout stability (Kuditipudi et al. 2019): how much the loss rises when units are dropped.

The loss is the training cross-entropy (the paper's L, no weight-decay term). A
choice of kept units is searched over random draws, as the reference code does
(20 draws per keep probability on 4,096 training examples): the best draw is the
one the path is built from, the median draw is the typical one.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn
from modeconn.progress import Progress

from modeconn.evaluation.metrics import nll_and_error
from modeconn.paths.dropout import Masks, draw_masks, dropped_state
from modeconn.paths.units import UnitChain


class Losses:
    """Training cross-entropy of weight states on fixed data (a subset for searching, all for the bound)."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int):
        self.model, self.x, self.y, self.batch_size = model, x, y, batch_size

    def __call__(self, state: Mapping[str, torch.Tensor]) -> float:
        return nll_and_error(self.model, state, self.x, self.y, self.batch_size)[0]

    def suffixes(self, state, chain: UnitChain, masks: Masks, keep: float, starts: Sequence[int]) -> list[float]:
        """The loss of theta_i (hidden layers i.. dropped) for each i in ``starts``."""
        device = self.x.device
        masks = [m.to(device) for m in masks]
        return [self(dropped_state(state, chain, masks, keep, start=i)) for i in starts]


def stability_curve(losses: Losses, chain: UnitChain, state, keeps: Sequence[float], draws: int,
                    generator: torch.Generator, progress: bool = False) -> list[dict]:
    """Per keep probability: the loss with every hidden layer dropped, best / median / mean /
    worst over ``draws`` random choices of kept units."""
    rows = []
    for keep in Progress(keeps, desc="dropout stability", enabled=progress):
        values = np.array([losses.suffixes(state, chain, draw_masks(chain, keep, generator)[0], keep, [0])[0]
                           for _ in range(draws)])
        rows.append({"keep": float(keep), "best": float(values.min()), "typical": float(np.median(values)),
                     "mean": float(values.mean()), "worst": float(values.max())})
    return rows


def search_path_masks(losses: Losses, chain: UnitChain, states: Sequence, keep: float, draws: int,
                      starts: Sequence[int], generator: torch.Generator,
                      progress: bool = False) -> tuple[Masks, Masks, dict]:
    """Disjoint kept sets for A and B (B keeps only units A drops) minimising the larger of the
    two nets' gaps max_i L(theta_i) - L over ``starts``; and the search's record (with each
    net's loss on the search examples, ``train_nll``)."""
    bases = [losses(s) for s in states]
    best, gaps = None, []
    for _ in Progress(range(draws), desc="searching dropout masks", enabled=progress):
        masks = draw_masks(chain, keep, generator, disjoint=2)
        gap = max(max(losses.suffixes(s, chain, m, keep, starts)) - base
                  for s, m, base in zip(states, masks, bases))
        gaps.append(gap)
        if best is None or gap < best[0]:
            best = (gap, masks)
    record = {"draws": draws, "samples": int(losses.x.shape[0]), "train_nll": bases, "best_gap": float(best[0]),
              "typical_gap": float(np.median(gaps))}
    return best[1][0], best[1][1], record
