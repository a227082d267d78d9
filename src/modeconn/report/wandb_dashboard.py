"""The W&B side of the dashboard: a saved report that compares methods, created from code.

Jobs log to W&B grouped by ``<paper>/<dataset>/<arch>`` with the method and alignment
as ``job_type`` (tracking.run_labels). The report has one section per setting: a run set
filtered to that dataset and arch, grouped by job type, so each bar/line is one method
averaged over its seeds (min-max band): test error and train loss along the path, the
summaries every job logs (barriers, max along the path, ensemble accuracy), and each
run's path and plane pictures.

    modeconn-report multirun/garipov2018 --wandb-report ENTITY/PROJECT   # saves it, prints its URL

Saving needs a W&B login; ``comparison_report`` alone builds the report offline.
"""
from __future__ import annotations

from modeconn.tracking import ALONG_X

# Summary keys the trackers log (runners/*: log_summary), as bar charts per method.
BAR_PANELS = (("test-error barrier, %", ["barrier/test_err"]),
              ("train-loss barrier, nats", ["barrier/train_loss"]),
              ("max test error along the path, %", ["max/test_err"]),
              ("ensemble vs baseline test accuracy, %", ["ensemble/test_acc", "baseline/test_acc"]))
# The profile along the path, logged as history against along/t (tracking.profile_steps).
LINE_PANELS = (("test error along the path, %", "along/test_err"), ("train loss along the path", "along/train_loss"))
MEDIA = ["path/picture", "plane/plane_test_err", "plane/plane_train_loss"]


def comparison_report(entity: str, project: str, settings: list[tuple[str, str]],
                      title: str = "modeconn: methods compared"):
    """A ``wandb_workspaces`` Report with one section per (dataset, arch) in ``settings``."""
    import wandb_workspaces.reports.v2 as wr
    from wandb_workspaces.expr import Config

    blocks = [wr.P("Each bar is one method (job type = method-align), mean over its seeds with the min-max range. "
                   "Made by modeconn-report --wandb-report; the same comparison as its dashboard.html.")]
    for dataset, arch in settings:
        runset = wr.Runset(entity=entity, project=project, name=f"{dataset} / {arch}",
                           filters=[Config("dataset.name") == dataset, Config("arch.name") == arch],
                           groupby=["JobType"])
        panels = [wr.LinePlot(title=name, x=ALONG_X, y=[metric], groupby_aggfunc="mean", groupby_rangefunc="minmax",
                              layout=wr.Layout(x=12 * i, y=0, w=12, h=8))
                  for i, (name, metric) in enumerate(LINE_PANELS)]
        panels += [wr.BarPlot(title=name, metrics=metrics, groupby_aggfunc="mean", groupby_rangefunc="minmax",
                              layout=wr.Layout(x=12 * (i % 2), y=8 + 8 * (i // 2), w=12, h=8))
                   for i, (name, metrics) in enumerate(BAR_PANELS)]
        panels.append(wr.MediaBrowser(title="path and plane pictures", media_keys=MEDIA, num_columns=3,
                                      layout=wr.Layout(x=0, y=24, w=24, h=10)))
        blocks += [wr.H2(f"{dataset} / {arch}"), wr.PanelGrid(runsets=[runset], panels=panels)]
    return wr.Report(project=project, entity=entity, title=title, blocks=blocks, width="fluid")


def save_comparison_report(target: str, runs: list[dict]) -> str:
    """Build the report for the settings ``runs`` cover, save it to ``target`` (ENTITY/PROJECT), return its URL."""
    if target.count("/") != 1:
        raise ValueError(f"--wandb-report {target!r}: give ENTITY/PROJECT, e.g. my-team/modeconn")
    entity, project = target.split("/")
    settings = sorted({(run["dataset"], run["arch"]) for run in runs})
    report = comparison_report(entity, project, settings)
    report.save()
    return report.url
