"""A static HTML page comparing methods, one section per (dataset, arch): error and loss
along the path, barriers, ensembles against their members, random cuts, the wedge model, and the
planes/slices.

plotly.js is embedded once in the page, so it opens from disk with no server and no
network (clusters and laptops offline). Every figure shows one trace per method (method,
alignment, PAM), averaged over seeds with the seeds' spread as a band or error bar.
"""
from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from modeconn.report.collect import method_label, spawn_of

PATH_METRICS = (("test_err", "test error, %"), ("train_loss", "train loss (+wd), nats"))
PLANE_METRICS = (("test_err", "test error, %"), ("train_loss", "train loss, nats"))
# A fixed colour per method label across every figure of the page.
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
           "#bcbd22")


def by_setting(runs: list[dict]) -> dict[tuple[str, str], dict[str, list[dict]]]:
    """{(dataset, arch): {method label: [runs over seeds]}}."""
    groups: dict = defaultdict(lambda: defaultdict(list))
    for run in runs:
        groups[(run["dataset"], run["arch"])][method_label(run)].append(run)
    return {k: dict(sorted(v.items())) for k, v in sorted(groups.items())}


def _colours(labels) -> dict[str, str]:
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(sorted(set(labels)))}


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def path_figure(methods: dict[str, list[dict]], colours: dict[str, str]) -> go.Figure | None:
    """Test error and train loss along the path; t is scaled to [0, 1] so that paths with
    several segments (dropout paths, complexes) share the axis with curves."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=[title for _, title in PATH_METRICS])
    drawn = False
    for label, runs in methods.items():
        profiles = [r["path"] for r in runs if len((r.get("path") or {}).get("t", [])) > 1
                    and all(metric in r["path"] for metric, _ in PATH_METRICS)]
        lengths = {len(p["t"]) for p in profiles}
        if not profiles or len(lengths) != 1:
            continue
        t = np.asarray(profiles[0]["t"], dtype=float)
        x = (t - t[0]) / (t[-1] - t[0])
        for col, (metric, _) in enumerate(PATH_METRICS, start=1):
            values = np.array([p[metric] for p in profiles], dtype=float)
            mean, low, high = values.mean(0), values.min(0), values.max(0)
            if len(profiles) > 1:
                fig.add_trace(go.Scatter(x=np.r_[x, x[::-1]], y=np.r_[high, low[::-1]], fill="toself",
                                         fillcolor=_rgba(colours[label], 0.15), line={"width": 0},
                                         hoverinfo="skip", showlegend=False, legendgroup=label), row=1, col=col)
            fig.add_trace(go.Scatter(x=x, y=mean, mode="lines", name=f"{label} ({len(profiles)} seeds)",
                                     line={"color": colours[label]}, legendgroup=label, showlegend=col == 1),
                          row=1, col=col)
        drawn = True
    if not drawn:
        return None
    fig.update_xaxes(title_text="position along the path (t scaled to [0, 1])")
    fig.update_layout(title="Along the path (mean over seeds; band: min to max)", height=420)
    return fig


def barrier_figure(methods: dict[str, list[dict]], colours: dict[str, str]) -> go.Figure | None:
    """The barrier (max along the path minus the mean of the ends) per method, mean +- std over seeds."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["test-error barrier, %", "train-loss barrier, nats"])
    drawn = False
    for col, metric in enumerate(("test_err", "train_loss"), start=1):
        values = {label: [r["summary"]["barrier"][metric] for r in runs
                          if metric in r.get("summary", {}).get("barrier", {})] for label, runs in methods.items()}
        values = {label: v for label, v in values.items() if v}
        if not values:
            continue
        fig.add_trace(go.Bar(x=list(values), y=[np.mean(v) for v in values.values()], name=metric, showlegend=False,
                             marker_color=[colours[label] for label in values],
                             error_y={"type": "data", "array": [np.std(v) for v in values.values()]},
                             text=[f"n={len(v)}" for v in values.values()]), row=1, col=col)
        drawn = True
    if not drawn:
        return None
    fig.update_layout(title="Barriers (mean ± std over seeds)", height=380)
    return fig


def _ensemble_points(run: dict) -> dict[str, list[tuple[int, float]]]:
    """(members, test error %) of the run's ensemble and of its baseline, as far as it records them."""
    ensemble = run["ensemble"]
    label = method_label(run)
    series: dict = defaultdict(list)
    for name, section in ((label, ensemble), (f"{label}: baseline", ensemble.get("baseline") or {}),
                          (f"{label}: equal-cost baseline", ensemble.get("baseline_equal_cost") or {})):
        points = section.get("curve") or ([section] if "members" in section and "test_acc" in section else [])
        series[name] += [(int(p["members"]), 100.0 - float(p["test_acc"])) for p in points
                         if "members" in p and "test_acc" in p]
    return series


def ensemble_figure(methods: dict[str, list[dict]], colours: dict[str, str]) -> go.Figure | None:
    """Test error against the number of members: each method's ensemble and its baselines."""
    series: dict = defaultdict(lambda: defaultdict(list))
    for label, runs in methods.items():
        for run in runs:
            if "ensemble" in run:
                for name, points in _ensemble_points(run).items():
                    for members, err in points:
                        series[(label, name)][members].append(err)
    if not series:
        return None
    fig = go.Figure()
    for (label, name), points in sorted(series.items()):
        members = sorted(points)
        dash = None if name == label else ("dot" if "equal-cost" in name else "dash")
        fig.add_trace(go.Scatter(x=members, y=[np.mean(points[k]) for k in members], mode="lines+markers", name=name,
                                 line={"color": colours[label], "dash": dash},
                                 error_y={"type": "data", "array": [np.std(points[k]) for k in members]}))
    fig.update_layout(title="Ensembles vs members (test error %, mean ± std over seeds)", height=400,
                      xaxis_title="members", yaxis_title="test error, %")
    return fig


def cuts_figure(methods: dict[str, list[dict]]) -> go.Figure | None:
    """Fort & Jastrzebski's random cuts: test error reached against the cut's dimension, one
    line per anchor radius (mean ± std over seeds)."""
    cells: dict = defaultdict(lambda: defaultdict(list))
    for runs in methods.values():
        for run in runs:
            if "cut" in run:
                cells[run["cut"]["radius_scale"]][run["cut"]["dim"]].append(run["cut"]["test_err"])
    if not cells:
        return None
    fig = go.Figure()
    for i, (scale, points) in enumerate(sorted(cells.items())):
        dims = sorted(points)
        fig.add_trace(go.Scatter(x=dims, y=[np.mean(points[d]) for d in dims], mode="lines+markers",
                                 name=f"cut at radius x{scale:g}", line={"color": PALETTE[i % len(PALETTE)]},
                                 error_y={"type": "data", "array": [np.std(points[d]) for d in dims]}))
    fig.update_layout(title="Random cuts: test error reached vs the cut's dimension, per anchor radius", height=400,
                      xaxis={"title": "cut dimension d", "type": "log"}, yaxis_title="test error, %")
    return fig


def toy_figure(methods: dict[str, list[dict]]) -> go.Figure | None:
    """Fort & Jastrzebski's wedge model: the three predictions of the first toy run, side by side
    (loss along the line and the trained path; cut success against d per radius; final radius
    against the learning rate per L2)."""
    toy = next((r["toy"] for runs in methods.values() for r in runs if "toy" in r), None)
    if toy is None:
        return None
    fig = make_subplots(rows=1, cols=3, subplot_titles=(
        "(1) max loss between optima in two wedges", "(2) cuts reaching low loss", "(3) final radius of noisy SGD"))
    c = toy["connect"]
    fig.add_trace(go.Bar(x=["straight line", "trained PolyChain"],
                         y=[c["linear_max_loss_mean"], c["path_max_loss_mean"]], marker_color=PALETTE[:2],
                         showlegend=False), row=1, col=1)
    k = toy["cuts"]
    for i, (r, row) in enumerate(zip(k["radii"], k["success"])):
        fig.add_trace(go.Scatter(x=k["dims"], y=row, mode="lines+markers", name=f"cut at radius {r:g}",
                                 line={"color": PALETTE[i % len(PALETTE)]}), row=1, col=2)
    rad = toy["radius"]
    for j, l2 in enumerate(rad["l2s"]):
        fig.add_trace(go.Scatter(x=rad["lrs"], y=[row[j] for row in rad["final_radius"]], mode="lines+markers",
                                 name=f"L2 {l2:g}", line={"color": PALETTE[(j + 5) % len(PALETTE)], "dash": "dot"}),
                      row=1, col=3)
    fig.update_xaxes(title_text="cut dimension d", row=1, col=2)
    fig.update_xaxes(title_text="learning rate", type="log", row=1, col=3)
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_yaxes(title_text="fraction of cuts", row=1, col=2)
    fig.update_yaxes(title_text="||w||", type="log", row=1, col=3)
    fig.update_layout(title="The wedge model's predictions (toy landscape)", height=420)
    return fig


def instability_figure(methods: dict[str, list[dict]]) -> go.Figure | None:
    """Frankle et al.'s instability analysis: the test-error barrier between two spawned children
    against K (the parent's epochs), one line per method without its K (mean ± std over seeds)."""
    cells: dict = defaultdict(lambda: defaultdict(list))
    for label, runs in methods.items():
        for run in runs:
            k = spawn_of(run)
            if k is not None and "barrier" in run.get("summary", {}):
                cells[label.rsplit("+spawn", 1)[0]][k].append(run["summary"]["barrier"]["test_err"])
    if not cells:
        return None
    fig = go.Figure()
    for i, (label, points) in enumerate(sorted(cells.items())):
        ks = sorted(points)
        fig.add_trace(go.Scatter(x=ks, y=[np.mean(points[k]) for k in ks], mode="lines+markers", name=label,
                                 line={"color": PALETTE[i % len(PALETTE)]},
                                 error_y={"type": "data", "array": [np.std(points[k]) for k in ks]}))
    fig.add_hline(y=2.0, line_dash="dot", line_color="grey", annotation_text="stable (< 2 points)")
    fig.update_layout(title="Instability: test-error barrier between children spawned after K epochs", height=400,
                      xaxis_title="K: epochs of the shared parent", yaxis_title="test-error barrier, %")
    return fig


def plane_files(run: dict) -> list[Path]:
    """The .npz planes/slices a run wrote beside its results.json (none for W&B-loaded runs)."""
    if "_file" not in run:
        return []
    sections = [run.get("plane"), (run.get("simplex") or {}).get("plane"), (run.get("complex") or {}).get("plane")]
    run_dir = Path(run["_file"]).parent
    return [run_dir / f for s in sections if s for f in s.get("files", []) if f.endswith(".npz")
            and (run_dir / f).exists()]


def plane_figure(path: Path, title: str) -> go.Figure:
    """A plane's test error and train loss as heatmaps (log colour scale, as Garipov's
    contour levels: the low-loss valley is a tiny range beside walls far higher), with
    the anchors and the curve drawn on it."""
    data = np.load(path)
    fig = make_subplots(rows=1, cols=2, subplot_titles=[t for _, t in PLANE_METRICS], horizontal_spacing=0.12)
    for col, (metric, label) in enumerate(PLANE_METRICS, start=1):
        values = np.asarray(data[metric], dtype=float).T        # [i, j] is (xs[i], ys[j]): rows are y
        shown = np.log10(np.clip(values - np.nanmin(values), 0, None) + 1e-3)
        fig.add_trace(go.Heatmap(x=data["xs"], y=data["ys"], z=shown, customdata=values, colorscale="Jet_r",
                                 hovertemplate=f"x %{{x:.3f}}<br>y %{{y:.3f}}<br>{label} %{{customdata:.4g}}<extra></extra>",
                                 colorbar={"title": "log10(v - min)", "x": 0.45 if col == 1 else 1.0, "len": 0.9},
                                 showscale=True), row=1, col=col)
        curve, anchors = data["curve_xy"], data["anchors_xy"]
        if len(curve):
            fig.add_trace(go.Scatter(x=curve[:, 0], y=curve[:, 1], mode="lines", line={"color": "black", "width": 2},
                                     name="curve", showlegend=col == 1), row=1, col=col)
        fig.add_trace(go.Scatter(x=anchors[:, 0], y=anchors[:, 1], mode="markers", name="anchors",
                                 marker={"color": "white", "size": 9, "line": {"color": "black", "width": 2}},
                                 showlegend=col == 1), row=1, col=col)
    fig.update_layout(title=title, height=460, legend={"orientation": "h", "y": -0.12})
    return fig


def dashboard_html(runs: list[dict], title: str = "modeconn: methods compared") -> str:
    """The whole page as one self-contained HTML string."""
    settings = by_setting(runs)
    colours = _colours(label for methods in settings.values() for label in methods)
    body, n_figures = [], 0
    for (dataset, arch), methods in settings.items():
        body.append(f'<section class="setting"><h2>{html.escape(dataset)} / {html.escape(arch)}</h2>')
        body.append('<ul class="methods">' + "".join(
            f'<li class="method" style="border-color:{colours[label]}">{html.escape(label)}: '
            f'{len(runs_)} run{"s" if len(runs_) > 1 else ""} (seeds {", ".join(map(str, sorted({r["seed"] for r in runs_})))})</li>'
            for label, runs_ in methods.items()) + "</ul>")
        figures = [path_figure(methods, colours), barrier_figure(methods, colours), ensemble_figure(methods, colours),
                   cuts_figure(methods), toy_figure(methods), instability_figure(methods)]
        for label, runs_ in methods.items():
            for path in plane_files(runs_[0])[:2]:
                figures.append(plane_figure(path, f"{label}, seed {runs_[0]['seed']}: {path.stem}"))
        for fig in filter(None, figures):
            n_figures += 1
            body.append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"figure-{n_figures}",
                                    config={"displaylogo": False, "responsive": True}))
        body.append("</section>")
    return PAGE.format(title=html.escape(title), plotlyjs=get_plotlyjs(), n_figures=n_figures, n_runs=len(runs),
                       body="\n".join(body))


def write_dashboard(runs: list[dict], out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(dashboard_html(runs), encoding="utf-8")
    return out


# window.onerror is installed before anything else runs, so that a test (or a person)
# sees every script error on the page itself; #status says when all figures have drawn.
PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<script>window.pageErrors = []; window.addEventListener("error", function (e) {{
  window.pageErrors.push(String(e.message)); document.documentElement.dataset.errors = window.pageErrors.join(" | ");
}});</script>
<style>
 body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
 section.setting {{ border-top: 2px solid #ccc; margin-top: 1.5em; }}
 ul.methods {{ list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .5em; }}
 li.method {{ border-left: 6px solid; padding: .2em .6em; background: #f5f5f5; }}
</style>
<script>{plotlyjs}</script>
</head><body>
<h1>{title}</h1>
<p>{n_runs} runs. Each trace is one method (method, alignment, PAM) over its seeds. Generated by modeconn-report.</p>
<p id="status">rendering {n_figures} figures</p>
{body}
<script>window.addEventListener("load", function () {{
  var drawn = document.querySelectorAll(".js-plotly-plot").length;
  document.getElementById("status").textContent = "rendered " + drawn + " of {n_figures} figures";
}});</script>
</body></html>
"""
