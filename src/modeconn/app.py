"""The Hydra app: one run = one (dataset, arch, method, align, seed).

config ─► data ─► endpoints (store) ─► path ─► evaluate ─► results.json (+ tracker)
"""
from __future__ import annotations

import gc
import hashlib
import logging
import os
import re
import sys
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from modeconn import threads, validate
from modeconn.align.groups import UnsupportedGraph
from modeconn.data import DatasetNotFound, load_dataset
from modeconn.errors import ConfigError, UserError, interrupt_on_signals
from modeconn.paths import ParameterSpace
from modeconn.paths.units import NotAChain
from modeconn.report.console import run_table
from modeconn.resume import finished
from modeconn.results import RunRecord, run_setting
from modeconn.store import CorruptEntry, EndpointStore, IncompatibleCheckpoint
from modeconn.tracking import make_tracker

CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf"
# Bad input, reported as one line instead of a traceback: the message names the value, file or
# place and the remedy. OSError covers what the disk says (unwritable or full, a file where a
# directory should be).
USER_ERRORS = (UserError, DatasetNotFound, IncompatibleCheckpoint, CorruptEntry, NotAChain, UnsupportedGraph, OSError)
log = logging.getLogger("modeconn")
MAX_DIRNAME = 120


def short_dirname(name: str) -> str:
    """A sweep job's directory name from its overrides: one directory (a '/' in a value becomes
    '_'), cut to fit file systems' 255-byte limit (a long override list would otherwise fail the
    job); when changed, a hash of the original keeps names apart."""
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    flat = name.replace("/", "_")       # an override value that is a path must not nest job dirs
    if len(flat.encode()) <= MAX_DIRNAME and flat == name:
        return name
    if len(flat.encode()) <= MAX_DIRNAME - 11:
        return f"{flat}-{digest}"       # the hash keeps `a=x/y` and `a=x_y` apart
    return f"{flat.encode()[:MAX_DIRNAME - 11].decode(errors='ignore')}-{digest}"


OmegaConf.register_new_resolver("short_dirname", short_dirname, replace=True)


def device_for(cfg: DictConfig) -> torch.device:
    if cfg.trainer.accelerator != "gpu":
        return torch.device("cpu")
    return torch.device("cuda", job_gpu(torch.cuda.device_count()))


def job_gpu(count: int) -> int:
    """One device per sweep job: job k of a multirun uses GPU k mod ``count``, so parallel jobs
    on one multi-GPU host (joblib) spread over its GPUs; a SLURM job sees only its own (0)."""
    if count <= 1 or not _in_multirun():
        return 0
    return HydraConfig.get().job.num % count


def run(cfg: DictConfig) -> dict:
    """Execute one run and return its results (also written to `cfg.output_dir`/results.json).

    The config is checked first (:mod:`modeconn.validate`): a bad value raises
    :class:`ConfigError` before anything is loaded or trained (a single run writes nothing; a
    sweep job records itself as failed so the sweep's state shows it). SIGTERM/SIGINT end
    the run as :class:`modeconn.errors.Interrupted` (exit status 143/130), recorded as failed.
    """
    problems = validate.problems(cfg)
    if problems and not _in_multirun():
        raise ConfigError(problems)        # a single run: one line each, nothing written
    out_dir = Path(cfg.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset, arch = run_setting(cfg)
    record = RunRecord(out_dir, dataset=dataset, arch=arch, method=cfg.method.name,
                       align=cfg.align.name, seed=int(cfg.seed), config=OmegaConf.to_container(cfg, resolve=True))
    tracker = None
    with interrupt_on_signals():
        try:
            if problems:
                raise ConfigError(problems)    # a sweep job: recorded as failed, the sweep goes on
            threads.apply(cfg.trainer.get("threads", "auto"), _launcher_config())
            # Imported here, not with the app: Lightning and what it loads (torchmetrics,
            # torchvision's models, torch._dynamo) are ~6 s that a sweep's driver, which only
            # launches the jobs, need not pay before its workers pay them again.
            from modeconn.runners import RunContext, runner_for
            from modeconn.training import accel

            device = device_for(cfg)
            if device.type == "cuda":
                torch.cuda.set_device(device)     # Lightning's devices=1 then trains on this job's GPU
            data = model = space = None
            if cfg.method.get("needs_data", True):    # all but Fort's toy landscape
                with record.stage("data"):
                    data = load_dataset(cfg.dataset, device, home=cfg.store_dir)
                model = accel.prepare(_build_model(cfg, data).to(device), data, cfg.trainer)
                space = ParameterSpace(model)
            tracker = make_tracker(cfg, out_dir)
            ctx = RunContext(cfg=cfg, data=data, model=model, space=space,
                             store=EndpointStore(cfg.store_dir), record=record, tracker=tracker, out_dir=out_dir)
            runner_for(cfg.method.name)(ctx)
            return record.ok()
        except BaseException as error:
            record.failed(error)
            raise
        finally:
            if tracker is not None:
                tracker.finish()


def _build_model(cfg: DictConfig, data) -> torch.nn.Module:
    """The run's network; an arch that does not fit (unknown params, input shape) is a config error."""
    from modeconn.training.endpoints import new_model

    try:
        return new_model(cfg, data)
    except (ValueError, TypeError) as error:
        raise ConfigError([f"arch={cfg.arch.name}: {error}"]) from error


def _launcher_config() -> dict | None:
    """This multirun job's launcher config (None in a single run)."""
    if not _in_multirun():
        return None
    return OmegaConf.to_container(HydraConfig.get().launcher, resolve=True)


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """The Hydra task (one job). In a multirun a failed job is recorded as failed and the sweep
    goes on; a single run exits non-zero. A multirun job that already finished with the same
    config (a re-run sweep) is skipped (``resume=false`` re-runs)."""
    _freeze_import_heap()
    earlier = _finished_job(cfg)
    if earlier is not None:
        log.info("job already done (results.json ok, same config): skipped; resume=false re-runs it")
        return _objective(earlier)
    try:
        results = run(cfg)
    except USER_ERRORS as error:
        if _in_multirun():
            log.error("job failed: %s", " / ".join(error_lines(error)))
            return None
        for line in error_lines(error):
            print(f"modeconn: error: {line}", file=sys.stderr)
        sys.exit(2)
    except Exception:
        if _in_multirun():
            log.exception("job failed; the sweep goes on")
            return None
        raise
    print(run_table(results, str(Path(cfg.output_dir) / "results.json")))
    return _objective(results)


def _freeze_import_heap() -> None:
    """Hide what the imports allocated (torch, Lightning, Hydra: ~550k objects) from the cyclic
    garbage collector, once per process: the command's (a single run, a sweep's driver) and each
    sweep job's under submitit or joblib, which enter through :func:`main`.

    Interpreter exit runs several full collections, each walking every tracked object (~0.9 s
    here): a finished job, or one stopped by SIGTERM, took ~5 s to exit after its results were
    written, time a scheduler's kill wait counts. Frozen objects are still freed by reference
    counting; only their cycles (import-time garbage, none of it the run's) are never collected.
    """
    if gc.get_freeze_count() == 0:
        gc.freeze()


def error_lines(error: BaseException) -> list[str]:
    """A user error as lines for ``modeconn: error: ...``: a config error's problems one a line,
    anything else its message (an OSError's with the path it failed on)."""
    if isinstance(error, ConfigError):
        return error.problems
    if isinstance(error, OSError) and not isinstance(error, DatasetNotFound) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        return [f"{error.strerror}{where}"]
    return [str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__]


def cli() -> None:
    """Console entry point (`modeconn`, `python -m modeconn`).

    Hydra prints a traceback for errors raised outside the task (a run dir it cannot create);
    here they are one line and exit status 2, and Hydra's own messages for unknown choices or
    keys are kept as they are, with exit status 2 and no traceback. ``HYDRA_FULL_ERROR=1`` set
    by the user still shows Hydra's full traceback.
    """
    from hydra.errors import HydraException

    _freeze_import_heap()                      # the sweep's driver exits at once too
    if os.environ.get("HYDRA_FULL_ERROR"):
        main()
        _exit_if_sweep_jobs_failed()
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"      # Hydra re-raises instead of printing; we print
    try:
        main()
    except HydraException as error:
        message = str(error).strip() or type(error).__name__
        cause = error.__cause__
        if cause is not None and str(cause).strip() and str(cause).strip() not in message:
            message += "\n" + str(cause).strip()
        print(f"modeconn: error: {message}", file=sys.stderr)
        sys.exit(2)
    except USER_ERRORS as error:
        for line in error_lines(error):
            print(f"modeconn: error: {line}", file=sys.stderr)
        sys.exit(2)
    except Exception as error:
        lines = lost_job_lines(error)
        if lines is None:
            raise
        for line in lines:
            print(f"modeconn: error: {line}", file=sys.stderr)
        sys.exit(1)
    _exit_if_sweep_jobs_failed()


def _exit_if_sweep_jobs_failed() -> None:
    """A sweep whose jobs failed (recorded, the others ran on) ends with exit status 1 and a line
    per failed job (:mod:`modeconn.sweep_outcome`)."""
    from modeconn.sweep_outcome import FAILED

    if not FAILED:
        return
    print(f"modeconn: error: {len(FAILED)} sweep job(s) failed; each is recorded in its results.json, and "
          f"running the same command again re-runs only the jobs that did not finish:", file=sys.stderr)
    for job_dir, error in FAILED:
        print(f"modeconn: error:   {job_dir}: {error}", file=sys.stderr)
    sys.exit(1)


def lost_job_lines(error: BaseException) -> list[str] | None:
    """A submitit sweep job that ended without a result (cancelled, pre-empted, killed: SIGTERM
    ends a run as failed, with no result for submitit) as two lines instead of submitit's traceback
    and the job's whole log; None for any other error.

    hydra-submitit-launcher waits for the jobs in order and stops at the first such one, while the
    sweep's other jobs run on under SLURM; running the same command once they are done skips the
    finished jobs and resumes this one.
    """
    if type(error).__name__ != "UncompletedJobError" or not type(error).__module__.startswith("submitit"):
        return None
    found = re.search(r"Job (\S+) \(task: \d+\) with path (\S+)_result\.pkl\s+has not produced any output "
                      r"\(state: ([^)]*)\)", str(error))
    if found is None:
        return None
    job, stem, state = found.groups()
    return [f"sweep job {job} ended without a result (state: {state}); its log: {stem}_log.err",
            "the sweep's other jobs go on; once they are done (squeue shows none), run the same command "
            "again: finished jobs are skipped, this one resumes from its checkpoints"]


def _finished_job(cfg: DictConfig) -> dict | None:
    if not (_in_multirun() and cfg.resume):
        return None
    return finished(cfg.output_dir, OmegaConf.to_container(cfg, resolve=True))


def _objective(results: dict) -> float | None:
    """What a job returns to the sweeper: the test-error barrier, when the method has a path."""
    return results["summary"]["barrier"]["test_err"] if "summary" in results else None
