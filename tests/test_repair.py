"""REPAIR (Jordan et al. 2023): planted statistics after the fold, ends untouched, the run's section."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import random_dataset, seeded_states
from modeconn.align import permutation_spec
from modeconn.align.repair import Repairer, layer_stats, plan_repair, repair_params

CASES = [("mlp", {"width": 32, "depth": 3, "bias": True, "batchnorm": False, "dropout": 0.0}, (1, 40)),
         ("convnet", {"channels": [8, 16], "bias": True, "batchnorm": False, "hidden": 24, "global_pool": False,
                      "dropout": 0.0}, (1, 12, 12)),
         pytest.param("resnet20", {"depth": 8, "width": 1, "batchnorm": False}, (3, 8, 8),   # residual streams, no BN
                      marks=pytest.mark.slow),
         pytest.param("vgg16", {"depth": 11, "batchnorm": False, "width": 0.125, "dropout": 0.0}, (3, 32, 32),
                      marks=pytest.mark.slow)]


def _pair(name, params, shape):
    model, states = seeded_states(name, params, shape, seeds=(0, 1), bias_std=0.1)
    names = [n for n, _ in model.named_parameters()]
    return model, [{n: s[n] for n in names} for s in states]


@pytest.mark.parametrize("name,params,shape", CASES)
def test_repaired_midpoint_has_the_interpolated_statistics_and_the_ends_are_unchanged(name, params, shape):
    model, (a, b) = _pair(name, params, shape)
    x = torch.randn(600 if name in ("mlp", "convnet") else 200, *shape, generator=torch.Generator().manual_seed(3))
    spec = permutation_spec(model, shape)
    repairer = Repairer(model, spec, a, b, x, batch_size=256)
    plan = repairer.plan
    hidden = [n for n, m in model.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.Conv1d))][:-1]
    assert sorted(plan.layers) == sorted(hidden) and plan.bn_layers == [] and not plan.reset_applies   # logits fixed
    # Targets computed independently: each endpoint's statistics, interpolated (std, not variance).
    stats_a, stats_b = layer_stats(model, a, x, plan.layers), layer_stats(model, b, x, plan.layers)
    for t in (0.3, 0.5):
        mid = {k: (1 - t) * a[k] + t * b[k] for k in a}
        before = layer_stats(model, mid, x, plan.layers)
        repaired = repairer(t, mid)
        after = layer_stats(model, repaired, x, plan.layers)
        for n in plan.layers:
            goal_mean = (1 - t) * stats_a[n][0] + t * stats_b[n][0]
            goal_std = (1 - t) * stats_a[n][1].sqrt() + t * stats_b[n][1].sqrt()
            mean, std = after[n][0], after[n][1].sqrt()
            scale = goal_std.abs().mean()
            assert torch.allclose(mean, goal_mean, rtol=1e-3, atol=1e-3 * scale), n
            assert torch.allclose(std, goal_std, rtol=1e-3), n
            assert not torch.allclose(before[n][1].sqrt(), goal_std, rtol=1e-2)   # it was not so before
        # only the corrected layers' weights and biases change
        changed = {k for k in a if not torch.equal(repaired[k], mid[k])}
        assert changed <= {f"{n}.{p}" for n in plan.layers for p in ("weight", "bias")}
    for t, end in ((0.0, a), (1.0, b)):
        assert all(torch.equal(repairer(t, end)[k], end[k]) for k in end)        # skipped at the ends
        refolded = repair_params(model, plan, end, repairer.targets, t, x, 256)  # and the fold is the identity there
        assert all(torch.allclose(refolded[k], end[k], rtol=1e-5, atol=1e-6) for k in end)


def test_bn_net_is_left_to_reset():
    params = {"width": 16, "depth": 2, "bias": True, "batchnorm": True, "dropout": 0.0}
    model, (a, b) = _pair("mlp", params, (1, 40))
    plan = plan_repair(model, permutation_spec(model, (1, 40)), (1, 40))
    assert plan.layers == [] and plan.bn_layers == ["features.0.linear", "features.1.linear"] and plan.reset_applies


def test_variance_collapse_is_reported_and_repaired():
    model, (a, b) = _pair("mlp", CASES[0][1], (1, 40))   # 3 hidden layers of 32
    x = random_dataset(400).x_train
    repairer = Repairer(model, permutation_spec(model, (1, 40)), a, b, x)
    section = repairer.report({k: 0.5 * (a[k] + b[k]) for k in a})
    before, after = section["midpoint_variance_ratio"]["before"], section["midpoint_variance_ratio"]["after"]
    assert len(before) == len(after) == 3 and section["channels"] == 96 and section["samples"] == 400
    assert all(r < 0.9 for r in before)            # independent nets: the midpoint's variance collapses
    assert all(0.9 < r <= 1.0 + 1e-6 for r in after)  # interpolated std: (sA+sB)^2/4 <= (vA+vB)/2


@pytest.mark.parametrize("extra,method", [(["align.repair=true"], "REPAIR"), (["align.reset=false"], "none")])
def test_a_run_records_the_repair_section(run_config, extra, method):
    from modeconn.app import run
    arch = ["arch.params.width=32"] + (["arch.params.batchnorm=true"] if method == "none" else [])
    cfg = run_config("dataset=digits", "method=linear", "method.points=5", "align=weight", *arch, *extra)
    results = run(cfg)
    saved = json.loads((results and open(f"{cfg.output_dir}/results.json").read()))
    section = saved["repair"]
    assert section["method"] == method
    if method == "REPAIR":
        assert section["layers"] == ["features.0.linear", "features.1.linear"] and section["points"] == 3
        assert section["midpoint_variance_ratio"]["after"][0] > section["midpoint_variance_ratio"]["before"][0]
        # REPAIR leaves the ends alone: they measure as the endpoints themselves
        assert saved["path"]["test_err"][0] == pytest.approx(saved["endpoints"][0]["test_err"])
    else:   # no RESET: the ends keep their training's running statistics (the protocol recomputes them)
        assert section["reset"] is False and section["bn_statistics"] == 2
