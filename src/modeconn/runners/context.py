"""What every method's run starts from: data, the network, its endpoints, the record."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig

from modeconn.checkpoints import file_sha256, load_checkpoint
from modeconn.data import Dataset
from modeconn.errors import ConfigError
from modeconn.evaluation.ensemble import member_probs
from modeconn.evaluation.metrics import PointMetrics, evaluate_point
from modeconn.paths import ParameterSpace
from modeconn.results import RunRecord
from modeconn.store import EndpointStore, load_state
from modeconn.tracking import Tracker
from modeconn.training.endpoints import endpoint_seed, initial_model, obtain_endpoint


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
    states: list[dict[str, torch.Tensor]] = field(default_factory=list)  # the same with buffers, as state dicts
    _spec: object = None  # the permutation groups, traced once by `permutation_spec()`

    @property
    def device(self) -> torch.device:
        return self.data.x_train.device

    def eval_kwargs(self) -> dict:
        e = self.cfg.eval
        return {"wd": e.wd, "batch_size": e.batch_size, "bn_batch_size": e.bn_batch_size}

    def evaluate(self, vector: torch.Tensor) -> PointMetrics:
        """The protocol's measurements of one flat weight vector."""
        return evaluate_point(self.model, self.space.unflatten(vector), self.data, **self.eval_kwargs())

    def test_probs(self, vector: torch.Tensor) -> torch.Tensor:
        """Test-set softmax of one weight vector, BN recomputed for it (an ensemble member)."""
        e = self.cfg.eval
        return member_probs(self.model, self.space.unflatten(vector.to(self.device)), self.data,
                            batch_size=e.batch_size, bn_batch_size=e.bn_batch_size)

    def initial_vector(self, seed: int) -> torch.Tensor:
        """The flat weights a network of this run's arch starts from with `seed`."""
        init = initial_model(self.cfg, self.data, seed)
        return self.space.flatten(dict(init.named_parameters())).to(self.device)

    def load_endpoints(self, count: int) -> list[torch.Tensor]:
        """Endpoints 0..count-1 (trained once, from the store), each evaluated and recorded;
        with ``align=`` set, endpoints 1.. are permuted to match endpoint 0 (same functions)."""
        if count > 1 and self.cfg.align.name != "none":
            self.permutation_spec()        # a net the tracer cannot follow is refused before any training
        for i in range(len(self.endpoints), count):
            with self.record.stage("endpoints"):
                state, about = self._endpoint_state(i)
            state = {k: v.to(self.device) for k, v in state.items()}
            vector = self.space.flatten(state)
            with self.record.stage("evaluate"):
                metrics = self.evaluate(vector)
            radii = self._radii(vector, i) if "file" not in about else {"radius": float(vector.norm())}
            self.record.data["endpoints"].append({**about, **metrics.as_dict(), **radii})
            if i > 0 and self.cfg.align.name != "none":
                with self.record.stage("align"):
                    state = self._aligned(state)
            self.states.append(state)
            self.endpoints.append(self.space.flatten(state))
        return self.endpoints[:count]

    def _endpoint_state(self, index: int) -> tuple[dict[str, torch.Tensor], dict]:
        """Endpoint `index`'s state dict and what the record says of where it came from: the store
        (trained once), or file `index` of ``endpoint.checkpoints`` (named with its sha256; the
        store is not touched)."""
        files = self.cfg.endpoint.get("checkpoints")
        if files:
            if index >= len(files):
                raise ConfigError([f"endpoint.checkpoints has {len(files)} files; this method needs "
                                   f"at least {index + 1}"])
            path = Path(str(files[index])).expanduser()
            state = load_checkpoint(self.model, path)
            load_state(self.model, state, source=str(path))
            digest = file_sha256(path)
            return state, {"key": f"sha256:{digest[:20]}", "cached": False, "file": str(path.resolve()),
                           "sha256": digest}
        entry, cached = obtain_endpoint(self.cfg, self.data, index, self.store)
        load_state(self.model, entry.state, source=str(self.store.entry_dir(entry.key)))
        return entry.state, {"key": entry.key, "cached": cached}

    def _radii(self, vector: torch.Tensor, index: int) -> dict[str, float]:
        """How far training took endpoint `index` from the origin and from where it started
        (Fort & Jastrzebski's radius, which learning rate, width and L2 change)."""
        start = self.initial_vector(endpoint_seed(self.cfg.seed, index)).to(vector.device)
        return {"radius": float(vector.norm()), "init_radius": float(start.norm()),
                "distance_from_init": float((vector - start).norm())}

    def permutation_spec(self):
        """The model's permutation groups (alignment and PAM share them), traced on first use."""
        if self._spec is None:
            from modeconn.align import permutation_spec
            self._spec = permutation_spec(self.model, tuple(self.data.x_train.shape[1:]))
        return self._spec

    def _aligned(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        from modeconn.align.endpoint import align_endpoint

        a = self.cfg.align
        spec = self.permutation_spec()
        section = self.record.data.setdefault("alignment", {
            "method": a.name, "groups": [{"name": g.name, "size": g.size} for g in spec.groups],
            "units": spec.units, "per_endpoint": []})
        aligned, report = align_endpoint(
            self.model, spec, self.states[0], state, method=a.name, x_train=self.data.x_train,
            x_check=self.data.x_test[: self.cfg.eval.batch_size], samples=a.get("samples", 10_000),
            batch_size=a.get("batch_size", 500), max_iter=a.get("max_iter", 100), seed=int(self.cfg.seed))
        section["per_endpoint"].append({"index": len(self.states), **report})
        reports = section["per_endpoint"]
        section["seconds"] = sum(r["seconds"] for r in reports)
        section["fraction_in_place"] = sum(r["fraction_in_place"] for r in reports) / len(reports)
        section["max_logit_change"] = max(r["max_logit_change"] for r in reports)
        return aligned
