"""Anokhin & Yarotsky's global connection model: a normalising flow on neuron vectors.

For one (dataset, arch, recipe) and one hidden layer, the flow is trained once on the
layer's neurons (``NeuronView.partition``) pooled from ``pool`` independently trained
nets (training/pool.py; never the run's own endpoints), and kept in the endpoint
store under a key of everything that determines it (the pool's endpoint specs, the
layer, the flow's hyperparameters), so every later run reuses it.

The flow is zuko's masked affine flow with ``passes=2``: coupling layers, whose inverse
costs one pass like the forward (a fully autoregressive inverse would need one pass per
coordinate, ~800 for an MNIST neuron). Neurons are standardised per coordinate with the
pool's mean and standard deviation first. Trained by maximum likelihood with Adam; a
tenth of the pooled neurons is held out and the epoch with the best held-out NLL kept.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Mapping

import torch
import zuko
from torch import nn
from modeconn.progress import Progress

from modeconn.paths.latent import NeuronBijection
from modeconn.paths.neurons import NeuronView
from modeconn.store import EndpointStore
from modeconn.training.pool import pool_net, pool_spec

log = logging.getLogger("modeconn")


class NeuronFlow(NeuronBijection):
    """Standardisation, then a coupling flow to a standard normal."""

    def __init__(self, features: int, transforms: int, hidden: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("std", torch.ones(features))
        self.flow = zuko.flows.MAF(features, transforms=transforms, passes=2, randperm=False,
                                   hidden_features=(hidden, hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flow().transform((x - self.mean) / self.std)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return self.flow().transform.inv(z) * self.std + self.mean

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood per coordinate of standardised neurons (nats)."""
        return -self.flow().log_prob((x - self.mean) / self.std).mean() / x.shape[1]


def flow_spec(cfg, layer: int, m: Mapping) -> dict:
    return {"kind": "neuron_flow", "format": 1, "layer": layer,
            "pool": [pool_spec(cfg, k) for k in range(int(m.pool))],
            "flow": {"transforms": int(m.transforms), "hidden": int(m.hidden), "epochs": int(m.epochs),
                     "lr": float(m.lr), "batch_size": int(m.batch_size), "seed": 0}}


def train_flow(samples: torch.Tensor, spec: dict, progress: bool = False) -> tuple[NeuronFlow, dict]:
    """Maximum likelihood on ``samples`` (rows); the best epoch on a held-out tenth is kept."""
    f = spec["flow"]
    generator = torch.Generator().manual_seed(f["seed"])
    torch.manual_seed(f["seed"])
    order = torch.randperm(len(samples), generator=generator)
    held = max(1, len(samples) // 10)
    valid, train = samples[order[:held]], samples[order[held:]]
    flow = NeuronFlow(samples.shape[1], f["transforms"], f["hidden"]).to(samples.device)
    flow.mean.copy_(train.mean(0))
    flow.std.copy_(train.std(0).clamp_min(1e-8))
    opt = torch.optim.Adam(flow.parameters(), lr=f["lr"])
    best, best_state, history = float("inf"), None, []
    for _ in Progress(range(f["epochs"]), desc="training the neuron flow", enabled=progress):
        flow.train()
        for idx in torch.randperm(len(train), generator=generator).split(f["batch_size"]):
            loss = flow.nll(train[idx.to(train.device)])
            opt.zero_grad()
            loss.backward()
            opt.step()
        flow.eval()
        with torch.no_grad():
            value = float(flow.nll(valid))
        history.append(value)
        if value < best:
            best, best_state = value, copy.deepcopy(flow.state_dict())
    flow.load_state_dict(best_state)
    return flow, {"valid_nll": best, "valid_nll_per_epoch": history, "train_neurons": len(train),
                  "valid_neurons": held}


def global_flows(cfg, data, view: NeuronView, store: EndpointStore, m: Mapping,
                 progress: bool = False) -> tuple[list[NeuronFlow], list[dict]]:
    """One flow per hidden layer, from the store or trained now (its pool too, once)."""
    flows, records = [], []
    states = None
    for j in range(view.depth):
        spec = flow_spec(cfg, j, m)

        def create(work_dir, j=j, spec=spec):
            nonlocal states
            if states is None:
                states = [pool_net(cfg, data, k, store)[0].state for k in range(int(m.pool))]
            rows = torch.cat([view.partition(s)[j] for s in states]).float()
            log.info("training the layer-%d neuron flow on %d neurons of %d pooled nets", j, len(rows), len(states))
            flow, info = train_flow(rows, spec, progress)
            return flow.state_dict(), {"spec": spec, **info}

        entry, cached = store.get_or_create(spec, create)
        rows = sum(n for _, n in view.neuron_parts(j, view.owns_outgoing(j)))
        flow = NeuronFlow(rows, int(m.transforms), int(m.hidden))
        flow.load_state_dict(entry.state)
        flows.append(flow.eval())
        records.append({"layer": j, "key": entry.key, "cached": cached, "valid_nll": entry.meta.get("valid_nll"),
                        "train_neurons": entry.meta.get("train_neurons")})
    return flows, records


__all__ = ["NeuronFlow", "flow_spec", "train_flow", "global_flows", "nn"]
