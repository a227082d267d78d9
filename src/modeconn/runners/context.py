"""What every method's run starts from: data, the network, its endpoints, the record."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig

from modeconn.data import Dataset
from modeconn.evaluation.metrics import PointMetrics, evaluate_point
from modeconn.paths import ParameterSpace
from modeconn.results import RunRecord
from modeconn.store import EndpointStore, load_state
from modeconn.tracking import Tracker
from modeconn.training.endpoints import obtain_endpoint


@dataclass
class RunContext:
    cfg: DictConfig
    data: Dataset
    model: torch.nn.Module          # a template network; weights are applied with functional_call
    space: ParameterSpace
    store: EndpointStore
    record: RunRecord
    tracker: Tracker
    out_dir: Path
    endpoints: list[torch.Tensor] = field(default_factory=list)   # flat weight vectors on the device

    @property
    def device(self) -> torch.device:
        return self.data.x_train.device

    def eval_kwargs(self) -> dict:
        e = self.cfg.eval
        return {"wd": e.wd, "batch_size": e.batch_size, "bn_batch_size": e.bn_batch_size}

    def evaluate(self, vector: torch.Tensor) -> PointMetrics:
        """The protocol's measurements of one flat weight vector."""
        return evaluate_point(self.model, self.space.unflatten(vector), self.data, **self.eval_kwargs())

    def load_endpoints(self, count: int) -> list[torch.Tensor]:
        """Endpoints 0..count-1 (trained once, from the store), each evaluated and recorded."""
        for i in range(len(self.endpoints), count):
            with self.record.stage("endpoints"):
                entry, cached = obtain_endpoint(self.cfg, self.data, i, self.store)
                load_state(self.model, entry.state, source=str(self.store.entry_dir(entry.key)))
            vector = self.space.flatten(entry.state).to(self.device)
            with self.record.stage("evaluate"):
                metrics = self.evaluate(vector)
            self.record.data["endpoints"].append({"key": entry.key, "cached": cached, **metrics.as_dict()})
            self.endpoints.append(vector)
        return self.endpoints[:count]
