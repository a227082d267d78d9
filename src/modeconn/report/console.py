"""A short plain-text table of one run, printed when it ends."""
from __future__ import annotations


def run_table(results: dict, results_path: str) -> str:
    rows = [f"{'':<26}{'test err %':>12}{'test nll':>10}{'train loss':>12}"]
    endpoints = results.get("endpoints", [])
    for i, e in enumerate(endpoints):
        if len(endpoints) > 4 and 1 < i < len(endpoints) - 1:   # long lists (ensembles): first, second, last
            if i == 2:
                rows.append(f"{f'... {len(endpoints) - 3} more endpoints':<26}")
            continue
        cached = " (cached)" if e["cached"] else ""
        rows.append(f"{f'endpoint {i}{cached}':<26}{e['test_err']:>12.2f}{e['test_nll']:>10.4f}{e['train_loss']:>12.4f}")
    summary = results.get("summary")
    if summary:
        rows.append(f"{'max along the path':<26}{summary['test_err']['max']:>12.2f}"
                    f"{summary['test_nll']['max']:>10.4f}{summary['train_loss']['max']:>12.4f}")
        rows.append(f"{'barrier':<26}{summary['barrier']['test_err']:>12.2f}"
                    f"{summary['barrier']['test_nll']:>10.4f}{summary['barrier']['train_loss']:>12.4f}")
        rows.append(f"path length {summary['length']:.3f}")
    dropout = results.get("dropout")
    if dropout:
        line = results.get("line", {}).get("summary", {}).get("train_nll", {}).get("max")
        rows.append(f"train NLL: path max {dropout['max_train_nll']:.4f} <= bound {results['bound']:.4f} "
                    f"(max(L_A, L_B) + eps, eps {results['epsilon']:.4f}): {dropout['bound_holds']}"
                    + (f"; straight line max {line:.4f}" if line is not None else ""))
        rows.append(f"{dropout['segments']} segments ({dropout['variant']}, keep {dropout['keep']}, "
                    f"{dropout['hidden_layers']} hidden layers)")
    simplex = results.get("simplex")
    if simplex:
        rows.append(f"{'simplex vertices (max)':<26}{max(simplex['vertex_test_err']):>12.2f}")
        rows.append(f"{'simplex centroid':<26}{simplex['centroid_test_err']:>12.2f}")
        rows.append(f"simplex volume {simplex['volume']:.4g} ({simplex['vertices']} vertices)")
    complex_ = results.get("complex")
    if complex_:
        rows.append(f"{'complex centroids (max)':<26}{max(complex_['centroid_test_err']):>12.2f}")
        rows.append(f"{'complex samples (max)':<26}{max(complex_['sample_test_err_max']):>12.2f}")
    subspace = results.get("subspace")
    if subspace:
        rows.append(f"{'subspace grid (max)':<26}{subspace['subspace_test_err_max']:>12.2f}")
        rows.append(f"{'flat triangle (max)':<26}{subspace['flat_test_err_max']:>12.2f}")
        for name, d in subspace["diversity"].items():
            if isinstance(d, dict):
                rows.append(f"{name}: disagreement {d['disagreement']:.2f}%, ensemble gain {d['gain']:.2f} points")
    cut = results.get("cut")
    if cut:
        label = f"cut d={cut['dim']}, radius x{cut['radius_scale']:g}"
        rows.append(f"{label:<26}{cut['test_err']:>12.2f}"
                    f"{cut['test_nll']:>10.4f}{cut['train_loss']:>12.4f}")
        rows.append(f"radius {cut['anchor_radius']:.2f} -> {cut['final_radius']:.2f} "
                    f"(travelled {cut['distance_travelled']:.2f})")
    toy = results.get("toy")
    if toy:
        c, k = toy["connect"], toy["cuts"]
        rows.append(f"(1) max loss: straight line {c['linear_max_loss_mean']:.3g}, "
                    f"trained path {c['path_max_loss_mean']:.3g}")
        rows.append("(2) cut dim needed: " + ", ".join(f"r={r:g}: {d if d is not None else '>' + str(max(k['dims']))}"
                                                      for r, d in zip(k["radii"], k["dim_needed"])))
        r = toy["radius"]
        rows.append("(3) final radius by lr (L2 0): " + ", ".join(f"{lr:g}: {row[0]:.1f}"
                                                                 for lr, row in zip(r["lrs"], r["final_radius"])))
    ensemble = results.get("ensemble")
    if ensemble:
        rows.append(f"{'':<26}{'test acc %':>12}{'test nll':>10}{'ece':>8}{'brier':>8}{'budget (ep)':>13}")
        equal_cost = ensemble.get("baseline_equal_cost") or {}
        for label, e in ((f"ensemble of {ensemble['members']}", ensemble), ("baseline", ensemble.get("baseline")),
                         (f"equal cost ({equal_cost.get('members')})", equal_cost)):
            if e and "test_acc" in e:
                budget = e.get("budget_epochs", "")
                rows.append(f"{label:<26}{e['test_acc']:>12.2f}{e['test_nll']:>10.4f}{e['test_ece']:>8.4f}"
                            f"{e['test_brier']:>8.4f}{budget:>13}")
    head = (f"{results['method']} (align={results['align']}) on {results['dataset']} / {results['arch']}, "
            f"seed {results['seed']}: {results['status']}")
    return "\n".join([head, *rows, f"results: {results_path}"])
