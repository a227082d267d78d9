"""results.json: the record of one run, and the source of truth for reports.

Every run writes one, with the keys of DESIGN.md's public contract. It is
written atomically, so a reader never sees half a file.
"""
from __future__ import annotations

import json
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# The schema's names live here, not in the modules that compute them, so that readers of
# results (modeconn-report) import no torch, Lightning or runners: `--help` starts in < 1 s.
#: The per-point metrics of a path profile (evaluation/metrics.py computes them).
METRICS = ("train_loss", "train_nll", "train_err", "test_nll", "test_err")
#: Kinds of Kuditipudi segments (paths/dropout.py builds them).
TOP_LAYER, FUNCTION_PRESERVING, ALL_LAYERS = "top_layer", "function_preserving", "all_layers"
SEGMENT_KINDS = (FUNCTION_PRESERVING, TOP_LAYER, ALL_LAYERS)

FILENAME = "results.json"
log = logging.getLogger("modeconn")
REQUIRED_KEYS = ("dataset", "arch", "method", "align", "seed", "config", "status", "timing", "endpoints")
ENDPOINT_KEYS = ("key", "cached", "train_loss", "train_err", "test_nll", "test_err")
PATH_KEYS = ("t", *METRICS)
SUMMARY_STATS = ("start", "end", "min", "max", "avg", "int")
ENSEMBLE_KEYS = ("members", "test_acc", "test_nll", "test_ece", "test_brier")
SIMPLEX_KEYS = ("vertices", "volume", "vertex_test_err", "centroid_test_err")
SUBSPACE_KEYS = ("modes", "optima_test_err", "triangles", "subspace_test_err_max", "flat_test_err_max",
                 "subspace_gap", "flat_gap", "diversity")
TOY_KEYS = ("landscape", "optima", "connect", "cuts", "radius", "files")
CUT_KEYS = ("dim", "radius_scale", "anchor_radius", "final_radius", "test_err")
ANOKHIN_KEYS = ("method", "align", "hidden_layers", "connect", "cost")
LAYERWISE_KEYS = ("fit_samples", "ridge", "segments_count", "segments")


def run_setting(cfg) -> tuple[str, str]:
    """The (dataset, arch) a run records and is grouped by: a method without data (Fort's toy
    landscape, `needs_data: false`) names itself and its landscape instead of the unused defaults."""
    if cfg.method.get("needs_data", True):
        return cfg.dataset.name, cfg.arch.name
    return cfg.method.name, "wedges"


def write_json_atomic(path: Path, data: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=float))
    os.replace(tmp, path)


def keep_earlier_ok(path: Path) -> Path | None:
    """Move an earlier run's ok results.json aside (results.<its time>.json) before a new run
    in the same directory writes its own, so a failed re-run never replaces a good record."""
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(earlier, dict) or earlier.get("status") != "ok":
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(path.stat().st_mtime))
    kept = path.with_name(f"results.{stamp}.json")
    n = 1
    while kept.exists():
        n += 1
        kept = path.with_name(f"results.{stamp}-{n}.json")
    os.replace(path, kept)
    log.warning("an earlier ok %s in %s was kept as %s", FILENAME, path.parent, kept.name)
    return kept


def read_results(path: str | Path) -> dict:
    path = Path(path)
    return json.loads((path / FILENAME if path.is_dir() else path).read_text())


class RunRecord:
    """Collects one run's results and timings, and writes them to results.json."""

    def __init__(self, out_dir: str | Path, *, dataset: str, arch: str, method: str, align: str, seed: int,
                 config: dict):
        self.path = Path(out_dir) / FILENAME
        self.data: dict[str, Any] = {"dataset": dataset, "arch": arch, "method": method, "align": align,
                                     "seed": seed, "config": config, "status": "running", "timing": {},
                                     "endpoints": []}
        self.kept = keep_earlier_ok(self.path)

    @contextmanager
    def stage(self, name: str):
        """Time a stage of the run (seconds accumulate under timing[name])."""
        start = time.perf_counter()
        try:
            yield
        finally:
            timing = self.data["timing"]
            timing[name] = timing.get(name, 0.0) + time.perf_counter() - start

    def ok(self) -> dict:
        self.data["status"] = "ok"
        self.data.pop("error", None)
        self.write()
        return self.data

    def failed(self, error: BaseException) -> dict:
        """Record the failure; if even that cannot be written (a full disk), the run's own error
        is what the caller goes on to report, so this one is logged and dropped."""
        self.data["status"] = "failed"
        self.data["error"] = f"{type(error).__name__}: {error}"
        try:
            self.write()
        except OSError as e:
            log.error("could not record the failure in %s: %s", self.path, e)
        return self.data

    def write(self) -> None:
        write_json_atomic(self.path, self.data)


def validate(results: dict) -> list[str]:
    """The ways `results` departs from the schema (empty when it follows it)."""
    problems = [f"missing key {k}" for k in REQUIRED_KEYS if k not in results]
    if results.get("status") not in ("ok", "failed"):
        problems.append(f"status is {results.get('status')!r}")
    if results.get("status") == "failed" and "error" not in results:
        problems.append("failed without error")
    for i, endpoint in enumerate(results.get("endpoints", [])):
        problems += [f"endpoints[{i}] lacks {k}" for k in ENDPOINT_KEYS if k not in endpoint]
    if "path" in results:
        lengths = {k: len(results["path"].get(k, [])) for k in PATH_KEYS}
        if len(set(lengths.values())) != 1:
            problems.append(f"path lists differ in length: {lengths}")
        summary = results.get("summary", {})
        for m in METRICS:
            problems += [f"summary.{m} lacks {s}" for s in SUMMARY_STATS if s not in summary.get(m, {})]
        problems += [f"summary lacks {k}" for k in ("length", "barrier") if k not in summary]
    if "ensemble" in results:
        ensemble = results["ensemble"]
        problems += [f"ensemble lacks {k}" for k in ENSEMBLE_KEYS if k not in ensemble]
        for name in ("baseline", "baseline_equal_cost"):
            if name in ensemble and "members" in ensemble[name]:   # deep-ensemble baselines
                problems += [f"ensemble.{name} lacks {k}" for k in ENSEMBLE_KEYS if k not in ensemble[name]]
    if "simplex" in results:
        problems += [f"simplex lacks {k}" for k in SIMPLEX_KEYS if k not in results["simplex"]]
    if "segments" in results:
        problems += _segment_problems(results)
    for section, keys in (("subspace", SUBSPACE_KEYS), ("toy", TOY_KEYS), ("cut", CUT_KEYS)):
        if section in results:
            problems += [f"{section} lacks {k}" for k in keys if k not in results[section]]
    if "subspace" in results:
        n = len(results["subspace"].get("barycentric", []))
        for t in results["subspace"].get("triangles", []):
            if any(len(t.get(f"{kind}_test_err", [])) != n for kind in ("subspace", "flat")):
                problems.append(f"subspace triangle {t.get('optima')} does not cover the {n}-point grid")
    if "anokhin" in results:
        problems += _anokhin_problems(results)
    return problems


def _anokhin_problems(results: dict) -> list[str]:
    """Anokhin & Yarotsky's connections: the connection and its cost; the layer-wise ones (WA,
    B-fly) with their fitting data and one record per segment covering the path's t; the
    latent-space ones (gauss, flow) with their round-trip error, the flow with one stored
    flow per hidden layer."""
    section = results["anokhin"]
    problems = [f"anokhin lacks {k}" for k in ANOKHIN_KEYS if k not in section]
    if section.get("method") in ("wa", "bfly"):
        problems += [f"anokhin lacks {k}" for k in LAYERWISE_KEYS if k not in section]
        segments = section.get("segments", [])
        if len(segments) != section.get("segments_count"):
            problems.append(f"anokhin has {len(segments)} segments, segments_count {section.get('segments_count')}")
        for i, seg in enumerate(segments):
            if seg.get("start") != i or seg.get("end") != i + 1:
                problems.append(f"anokhin.segments[{i}] spans {seg.get('start')}..{seg.get('end')}, not {i}..{i + 1}")
        t = results.get("path", {}).get("t", [])
        if t and segments and (t[0] != 0 or t[-1] != len(segments)):
            problems.append(f"path t runs {t[0]}..{t[-1]}, the segments 0..{len(segments)}")
    if section.get("method") in ("gauss", "flow") and "round_trip_error" not in section:
        problems.append("anokhin lacks round_trip_error")
    if section.get("method") == "flow":
        flows = section.get("flows", [])
        if len(flows) != section.get("hidden_layers"):
            problems.append(f"anokhin has {len(flows)} flows for {section.get('hidden_layers')} hidden layers")
        problems += [f"anokhin.flows[{i}] lacks {k}" for i, f in enumerate(flows) for k in ("key", "cached")
                     if k not in f]
    return problems


def _segment_problems(results: dict) -> list[str]:
    """Kuditipudi's constructed path: consecutive segments covering the path's t, each with a
    known kind (function-preserving ones with their measured logit change), and eps and the bound."""
    problems = [f"missing key {k}" for k in ("epsilon", "bound") if k not in results]
    segments = results["segments"]
    for i, seg in enumerate(segments):
        if seg.get("kind") not in SEGMENT_KINDS:
            problems.append(f"segments[{i}] has kind {seg.get('kind')!r}")
        if seg.get("start") != i or seg.get("end") != i + 1:
            problems.append(f"segments[{i}] spans {seg.get('start')}..{seg.get('end')}, not {i}..{i + 1}")
        if seg.get("kind") == "function_preserving" and "max_logit_change" not in seg:
            problems.append(f"segments[{i}] lacks max_logit_change")
    t = results.get("path", {}).get("t", [])
    if t and (t[0] != 0 or t[-1] != len(segments)):
        problems.append(f"path t runs {t[0]}..{t[-1]}, the segments 0..{len(segments)}")
    return problems
