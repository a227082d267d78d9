"""Ensembles: metrics, FGE's cyclic LR, and method=ensemble / method=fge runs end to end."""
import math

import pytest
import torch

from modeconn.app import run
from modeconn.evaluation.ensemble import ensemble_metrics, growing_ensemble
from modeconn.results import read_results, validate
from modeconn.training.fge import check_cycle, cyclic_lr, fge_cycles

LR1, LR2 = 0.05, 0.0005


def test_cyclic_lr_is_lr1_at_cycle_start_lr2_at_middle_and_periodic():
    iters = 20
    assert cyclic_lr(0, iters, LR1, LR2) == pytest.approx(LR1)
    assert cyclic_lr(iters // 2, iters, LR1, LR2) == pytest.approx(LR2)
    assert cyclic_lr(iters // 4, iters, LR1, LR2) == pytest.approx((LR1 + LR2) / 2)
    assert cyclic_lr(3 * iters // 4, iters, LR1, LR2) == pytest.approx((LR1 + LR2) / 2)
    lrs = [cyclic_lr(s, iters, LR1, LR2) for s in range(3 * iters)]
    assert lrs[iters:2 * iters] == pytest.approx(lrs[:iters])
    assert lrs[2 * iters:] == pytest.approx(lrs[:iters])
    assert all(a > b for a, b in zip(lrs[:iters // 2], lrs[1:iters // 2 + 1]))        # down to the middle
    assert all(a < b for a, b in zip(lrs[iters // 2:iters - 1], lrs[iters // 2 + 1:iters]))  # back up
    assert min(lrs) == pytest.approx(LR2) and max(lrs) == pytest.approx(LR1)


def test_cycles_fill_the_remaining_budget_and_at_least_one():
    assert fge_cycles(30, 24, 2) == 3
    assert fge_cycles(2, 2, 2) == 1
    assert fge_cycles(30, 24, 2, cycles=5) == 5
    with pytest.raises(ValueError):
        check_cycle(3)


def test_ensemble_metrics_by_hand():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.5, 0.4, 0.1], [0.2, 0.2, 0.6]], dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 2])
    m = ensemble_metrics(probs, y)
    assert m["test_acc"] == pytest.approx(75.0)
    assert m["test_nll"] == pytest.approx(-(math.log(0.7) + math.log(0.6) + math.log(0.4) + math.log(0.6)) / 4)
    brier = ((0.3**2 + 0.2**2 + 0.1**2) + (0.1**2 + 0.4**2 + 0.3**2)
             + (0.5**2 + 0.6**2 + 0.1**2) + (0.2**2 + 0.2**2 + 0.4**2)) / 4
    assert m["test_brier"] == pytest.approx(brier)
    # ECE with 15 bins on max-probability confidence: bins {0.7}, {0.6, 0.6}, {0.5} -> |acc - conf| weighted
    ece = (abs(1 - 0.7) + abs(2 - 1.2) + abs(0 - 0.5)) / 4
    assert m["test_ece"] == pytest.approx(ece, abs=1e-6)
    assert set(m) == {"test_acc", "test_nll", "test_ece", "test_brier"}


def test_confident_correct_predictions_have_zero_ece_nll_brier():
    y = torch.tensor([0, 2, 1, 1])
    m = ensemble_metrics(torch.nn.functional.one_hot(y, 3).double(), y)
    assert m["test_acc"] == 100.0
    assert m["test_ece"] == pytest.approx(0.0, abs=1e-7)
    assert m["test_nll"] == pytest.approx(0.0, abs=1e-12) and m["test_brier"] == pytest.approx(0.0)


def test_growing_ensemble_averages_members():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (50,), generator=g)
    members = [torch.softmax(torch.randn(50, 4, generator=g), 1) for _ in range(3)]
    curve = growing_ensemble(members, y)
    assert [c["members"] for c in curve] == [1, 2, 3]
    single = ensemble_metrics(members[0], y)
    assert {k: curve[0][k] for k in single} == pytest.approx(single)
    mean = ensemble_metrics(sum(members) / 3, y)
    assert {k: curve[2][k] for k in mean} == pytest.approx(mean)
    # one member averaged with itself is the member
    assert {k: v for k, v in growing_ensemble([members[1], members[1]], y)[1].items() if k != "members"} \
        == pytest.approx(ensemble_metrics(members[1], y))


def _check_section(results):
    assert validate(results) == [], validate(results)
    assert results["status"] == "ok"
    section = results["ensemble"]
    assert len(section["curve"]) == section["members"]
    assert {k: section["curve"][-1][k] for k in ("test_acc", "test_nll", "test_ece", "test_brier")} == \
        {k: section[k] for k in ("test_acc", "test_nll", "test_ece", "test_brier")}
    assert 0 <= section["test_acc"] <= 100 and section["test_nll"] > 0 and 0 <= section["test_ece"] <= 1
    return section


def test_independent_ensemble_run(run_config, tmp_path):
    results = run(run_config("dataset=digits", "arch=mlp", "method=ensemble", "method.members=2"))
    assert read_results(tmp_path / "run")["ensemble"]["members"] == 2
    section = _check_section(results)
    assert section["budget_epochs"] == 2 * 2          # trainer=smoke: endpoint.epochs 2
    assert len(results["endpoints"]) == 2
    assert results["endpoints"][0]["key"] != results["endpoints"][1]["key"]
    # the baseline is member 0 alone, and agrees with the endpoint's own evaluation
    assert section["baseline"]["test_acc"] == section["curve"][0]["test_acc"]
    assert section["baseline"]["test_acc"] == pytest.approx(100 - results["endpoints"][0]["test_err"])
    assert section["baseline"]["test_nll"] == pytest.approx(results["endpoints"][0]["test_nll"], rel=1e-5)


def test_fge_run(run_config, tmp_path):
    cfg = run_config("dataset=digits", "arch=mlp", "method=fge", "method.cycles=2", "endpoint.epochs=3")
    results = run(cfg)
    section = _check_section(read_results(tmp_path / "run"))
    fge = section["fge"]
    assert section["members"] == fge["cycles"] == 2
    assert fge["snapshot_epochs"] == [0, 2]
    assert fge["snapshot_lrs"] == pytest.approx([LR2, LR2])
    assert section["start"]["epochs"] == 2                      # round(0.8 * 3)
    assert section["budget_epochs"] == 2 + 2 * 2
    assert section["baseline"]["budget_epochs"] == 3
    assert section["baseline"]["key"] == results["endpoints"][0]["key"] != section["start"]["key"]
    assert len(section["member_metrics"]) == 2 and len(results["endpoints"]) == 1


def test_fge_snapshots_are_distinct_and_smoke_defaults_work(run_config, tmp_path, monkeypatch):
    import modeconn.runners.ensemble as runner
    taken = {}
    original = runner.train_fge

    def spy(*args, **kwargs):
        snapshots, info = original(*args, **kwargs)
        taken["snapshots"] = snapshots
        return snapshots, info

    monkeypatch.setattr(runner, "train_fge", spy)
    results = run(run_config("dataset=digits", "arch=mlp", "method=fge", "method.cycles=2"))
    section = _check_section(results)
    assert section["members"] == section["fge"]["cycles"] == 2
    a, b = taken["snapshots"]
    assert a.shape == b.shape and not torch.equal(a, b)
    assert (a - b).norm() > 1e-4
    # trainer=smoke (endpoint.epochs 2) with default cycles: start at 2 epochs, one cycle
    results = run(run_config("dataset=digits", "arch=mlp", "method=fge", f"output_dir={tmp_path / 'run2'}"))
    section = _check_section(results)
    assert section["members"] == section["fge"]["cycles"] == 1
    assert section["budget_epochs"] == 2 + 2 and section["start"]["cached"]
    # run again in the same directory: FGE resumes from its finished checkpoint, snapshots included
    again = run(run_config("dataset=digits", "arch=mlp", "method=fge", f"output_dir={tmp_path / 'run2'}"))
    assert again["ensemble"]["curve"] == section["curve"]


def test_fge_budget_counts_whole_models(run_config):
    from modeconn.app import run
    results = run(run_config("dataset=digits", "method=fge", "endpoint.epochs=4", "method.budget=2"))
    # start: round(0.8 * 4) = 3 epochs, then (2 * 4 - 3) // 2 = 2 cycles of 2 epochs
    assert results["ensemble"]["members"] == 2
    assert results["ensemble"]["budget_epochs"] == 3 + 2 * 2
