"""Where a run reports besides results.json: W&B, a CSV file, or nowhere.

results.json is the source of truth; a tracker mirrors it for people: W&B is
the shared dashboard (one W&B run per job), CSV is for a quick look.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

from omegaconf import OmegaConf

from modeconn.results import run_setting


class Tracker:
    """Does nothing: logger=none."""

    def lightning_logger(self):
        """A Lightning logger for trained paths, or False."""
        return False

    def log_profile(self, profile: dict[str, list[float]]) -> None: ...

    def log_summary(self, values: dict) -> None: ...

    def log_image(self, name: str, path: Path) -> None: ...

    def finish(self) -> None: ...


class CsvTracker(Tracker):
    """profile.csv (one row per grid point) and Lightning's metrics.csv in the run dir."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)

    def lightning_logger(self):
        from lightning.pytorch.loggers import CSVLogger
        return CSVLogger(save_dir=str(self.out_dir), name="training", version="")

    def log_profile(self, profile):
        keys = list(profile)
        with open(self.out_dir / "profile.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(keys)
            writer.writerows(zip(*(profile[k] for k in keys)))


ALONG_X = "along/t"


def profile_steps(profile: dict[str, list[float]]) -> list[dict[str, float]]:
    """One W&B history row per grid point: ``along/<metric>`` at ``along/t``."""
    keys = list(profile)
    return [{f"along/{k}": float(v) for k, v in zip(keys, row)} for row in zip(*(profile[k] for k in keys))]


def wandb_mode(configured: str | None) -> str:
    """online when an API key is configured, offline otherwise; WANDB_MODE or the config wins."""
    if configured:
        return configured
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    import wandb
    try:
        has_key = bool(os.environ.get("WANDB_API_KEY") or wandb.api.api_key)
    except Exception:
        has_key = False
    return "online" if has_key else "offline"


def paper_of_run() -> str:
    """The experiment (paper table) this job belongs to, "adhoc" outside one."""
    from hydra.core.hydra_config import HydraConfig
    if HydraConfig.initialized():
        return HydraConfig.get().runtime.choices.get("experiment") or "adhoc"
    return "adhoc"


def run_labels(cfg, paper: str) -> dict:
    """W&B group, tags, job type and name: a workspace grouped by ``group`` puts one paper's
    setting (dataset / arch) together; ``job_type`` (the method) and ``align-*`` tags split
    it by method, so the runs of several seeds of one method fall into one line."""
    dataset, arch = run_setting(cfg)
    return {"group": cfg.logger.group or f"{paper}/{dataset}/{arch}",
            "tags": [f"paper-{paper}", dataset, arch, cfg.method.name, f"align-{cfg.align.name}",
                     *cfg.logger.tags],
            "job_type": f"{cfg.method.name}-{cfg.align.name}",
            "name": f"{cfg.method.name}-{cfg.align.name}-s{cfg.seed}"}


class WandbTracker(Tracker):
    """One W&B run per job; at the end its results.json is uploaded with it, so that
    `modeconn-report --wandb ENTITY/PROJECT` reads the same records as from disk."""

    def __init__(self, cfg, out_dir: Path):
        import wandb
        self.wandb = wandb
        self.out_dir = Path(out_dir)
        log_cfg = cfg.logger
        self.run = wandb.init(
            project=log_cfg.project, entity=log_cfg.entity, mode=wandb_mode(log_cfg.mode),
            **run_labels(cfg, paper_of_run()), dir=str(out_dir),
            config=OmegaConf.to_container(cfg, resolve=True), reinit="finish_previous",
        )

    def lightning_logger(self):
        from lightning.pytorch.loggers import WandbLogger
        return WandbLogger(experiment=self.run)

    def log_profile(self, profile):
        keys = list(profile)
        table = self.wandb.Table(columns=keys, data=[list(row) for row in zip(*(profile[k] for k in keys))])
        self.run.log({"path/table": table})
        for metric in keys[1:]:
            self.run.log({f"path/{metric}": self.wandb.plot.line(table, "t", metric, title=f"{metric} along the path")})
        # The same profile as history against its own x axis, so that W&B line plots overlay
        # the runs of a group and average a method's seeds (the report's "along the path" panels).
        self.run.define_metric(ALONG_X)
        self.run.define_metric("along/*", step_metric=ALONG_X)
        for step in profile_steps(profile):
            self.run.log(step)

    def log_summary(self, values):
        self.run.summary.update(values)

    def log_image(self, name, path):
        self.run.log({name: self.wandb.Image(str(path))})

    def finish(self):
        results = self.out_dir / "results.json"
        if results.exists():
            self.run.save(str(results), base_path=str(self.out_dir), policy="now")
        self.run.finish()


def make_tracker(cfg, out_dir: Path) -> Tracker:
    name = cfg.logger.name
    if name == "wandb":
        return WandbTracker(cfg, out_dir)
    if name == "csv":
        return CsvTracker(out_dir)
    if name == "none":
        return Tracker()
    raise ValueError(f"logger={name}: choose wandb, csv or none")
