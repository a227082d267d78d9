"""Fort & Jastrzebski 2019's tables: the wedge model's predictions, on the toy and on networks.

Each table checks one claim. The toy (`method=toy`): straight lines between optima in
different wedges leave the low-loss set while trained paths cross at an intersection;
random cuts need fewer dimensions farther out; step size and L2 set the radius. On real
networks: a subspace joining three or more optima is low loss over its whole grid while
their flat triangle is not (`method=subspace`); members from different optima are more
diverse than neighbours of one optimum; random cuts reach better accuracy at a given
dimension farther from the origin (`method=cut`); learning rate, width and L2 change how
far training travels (endpoint `radius` / `distance_from_init`). The paper prints no
numbers to set beside these (PAPERS.md): the claims are qualitative, the tables measured.
Values are mean +- std over seeds.
"""
from __future__ import annotations

from collections import defaultdict

from modeconn.report.collect import mean_std_cell
from modeconn.report.table import Table, render


def _table(title: str, corner: str, columns: list[str], rows: list[list[str]], notes=()) -> Table:
    table = Table(title, columns, corner=corner, notes=list(notes))
    for label, *cells in rows:
        table.add(label, cells)
    return table


def toy_tables(runs: list[dict]) -> list[Table]:
    toys = [r["toy"] for r in runs if "toy" in r]
    if not toys:
        return []
    where = "The wedge model (toy landscape)"
    connect = [t["connect"] for t in toys]
    out = [_table(f"{where}, prediction 1: optima in different wedges (loss = distance², 0 inside a wedge)",
                  "pairs of optima", ["max loss, straight line", "max loss, trained PolyChain",
                                      "max distance to either wedge where it crosses", "runs"],
                  [["in different wedges", mean_std_cell([c["linear_max_loss_mean"] for c in connect], ".3g"),
                    mean_std_cell([c["path_max_loss_mean"] for c in connect], ".2g"),
                    mean_std_cell([c["crossing_distance_mean"] for c in connect], ".2g"), str(len(connect))]])]
    cuts = toys[0]["cuts"]
    rows = []
    for i, r in enumerate(cuts["radii"]):
        cells = [mean_std_cell([t["cuts"]["success"][i][j] for t in toys]) for j in range(len(cuts["dims"]))]
        needed = [t["cuts"]["dim_needed"][i] for t in toys]
        rows.append([f"{r:g}", *cells, "/".join(str(d) if d is not None else f">{max(cuts['dims'])}" for d in needed)])
    out.append(_table(f"{where}, prediction 2: fraction of {cuts['count']} random cuts reaching low loss (within "
                      f"{cuts['threshold']:g} x radius of a wedge), by cut radius and dimension", "radius",
                      [*(f"d={d}" for d in cuts["dims"]), "d for half the cuts"], rows))
    radius = toys[0]["radius"]
    out.append(_table(f"{where}, prediction 3: final radius of noisy SGD, by learning rate (rows) and L2 (columns)",
                      "lr", [f"L2 {l2:g}" for l2 in radius["l2s"]],
                      [[f"{lr:g}", *(mean_std_cell([t["radius"]["final_radius"][i][j] for t in toys], ".1f")
                                     for j in range(len(radius["l2s"])))] for i, lr in enumerate(radius["lrs"])]))
    return out


def subspace_tables(runs: list[dict]) -> list[Table]:
    groups = defaultdict(list)
    for r in runs:
        if "subspace" in r:
            groups[(r["dataset"], r["arch"], r["subspace"]["modes"])].append(r)
    if not groups:
        return []
    rows = []
    for (dataset, arch, modes), rs in sorted(groups.items()):
        s = [r["subspace"] for r in rs]
        rows.append([f"{dataset} / {arch}", str(modes), mean_std_cell([max(x["optima_test_err"]) for x in s]),
                     mean_std_cell([x["subspace_test_err_max"] for x in s]),
                     mean_std_cell([x["subspace_test_err_mean"] for x in s]),
                     mean_std_cell([x["flat_test_err_max"] for x in s]),
                     mean_std_cell([x["flat_test_err_mean"] for x in s]), str(len(rs))])
    out = [_table("Low-loss subspace joining a set of optima (test error %, over the barycentric grid)", "setting",
                  ["optima", "worst optimum", "subspace max", "subspace mean", "flat max", "flat mean", "runs"], rows)]
    rows = []
    for (dataset, arch, modes), rs in sorted(groups.items()):
        for name in ("different_optima", "one_optimum_neighbourhood", "subspace_samples"):
            d = [r["subspace"]["diversity"][name] for r in rs]
            rows.append([f"{dataset} / {arch}", name.replace("_", " "), str(d[0]["members"]),
                         mean_std_cell([x["disagreement"] for x in d]),
                         mean_std_cell([x["member_test_err_mean"] for x in d]),
                         mean_std_cell([x["ensemble_test_err"] for x in d]), mean_std_cell([x["gain"] for x in d]),
                         mean_std_cell([x["ensemble_test_nll"] for x in d], ".4f")])
    out.append(_table("Low-loss subspace: ensembles by origin, diversity and gain (test)", "setting",
                      ["members from", "members", "disagreement %", "member err %", "ensemble err %", "gain (points)",
                       "ensemble NLL"], rows))
    return out


def cuts_tables(runs: list[dict]) -> list[Table]:
    cells = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if "cut" in r:
            c = r["cut"]
            cells[(r["dataset"], r["arch"])][(c["radius_scale"], c["dim"])].append(c)
    out = []
    for (dataset, arch), grid in sorted(cells.items()):
        scales = sorted({k[0] for k in grid})
        dims = sorted({k[1] for k in grid})
        rows = [[f"x{s:g}", *(mean_std_cell([c["test_err"] for c in grid.get((s, d), [])]) for d in dims)]
                for s in scales]
        out.append(_table(f"Random cuts, {dataset} / {arch}: test error % reached, by the anchor's radius (x a fresh "
                          "initialisation's) and the cut's dimension", "radius", [f"d={d}" for d in dims], rows))
    return out


def _numeric_key(item) -> tuple:
    """Sort settings by name, then numerically (width 128 before 1024); missing values first."""
    return tuple((0, x) if isinstance(x, (int, float)) else (1, str(x)) if x is not None else (-1, "")
                 for x in item[0])


def radius_tables(runs: list[dict]) -> list[Table]:
    groups = defaultdict(list)
    for r in runs:
        arch = (r.get("config") or {}).get("arch", {})
        if r["method"] != "ensemble" or not r.get("endpoints") or "radius" not in r["endpoints"][0]:
            continue
        key = (r["dataset"], r["arch"], arch.get("lr"), arch.get("wd"), (arch.get("params") or {}).get("width"))
        groups[key].extend(r["endpoints"])
    if len(groups) < 2:
        return []
    rows = [[f"{d} / {a}", f"{lr:g}", f"{wd:g}", str(width), mean_std_cell([e["init_radius"] for e in es], ".1f"),
             mean_std_cell([e["radius"] for e in es], ".1f"), mean_std_cell([e["distance_from_init"] for e in es], ".1f"),
             mean_std_cell([e["test_err"] for e in es])]
            for (d, a, lr, wd, width), es in sorted(groups.items(), key=_numeric_key)]
    return [_table("How far training travels (endpoint radius ||w||, distance from its initialisation)", "setting",
                   ["lr", "L2", "width", "initial radius", "final radius", "distance travelled", "test err %"], rows)]


def tables(runs: list[dict]) -> list[Table]:
    return toy_tables(runs) + subspace_tables(runs) + cuts_tables(runs) + radius_tables(runs)


def markdown(runs: list[dict]) -> str:
    return render(tables(runs), "md")
