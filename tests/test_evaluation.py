"""The evaluation protocol: summaries, BN recomputation, batch-size invariance."""
import numpy as np
import torch
from conftest import random_dataset

from modeconn.evaluation.bn import recompute_bn
from modeconn.evaluation.metrics import evaluate_point
from modeconn.evaluation.profile import evaluate_path
from modeconn.evaluation.summary import summarize, summarize_profile
from modeconn.models import build_model
from modeconn.paths import LinearPath, ParameterSpace


def test_summary_matches_garipov_formulas():
    values = [1.0, 3.0, 2.0, 0.5]
    dl = [0.0, 1.0, 2.0, 1.0]
    s = summarize(values, dl)
    # int: trapezoid averages of each segment weighted by its length, over the total length
    expected = (2.0 * 1 + 2.5 * 2 + 1.25 * 1) / 4
    assert np.isclose(s["int"], expected)
    assert (s["start"], s["end"], s["min"], s["max"]) == (1.0, 0.5, 0.5, 3.0)
    assert np.isclose(s["avg"], np.mean(values))
    full = summarize_profile({"m": values}, dl, ["m"])
    assert np.isclose(full["length"], 4.0)
    assert np.isclose(full["barrier"]["m"], 3.0 - 0.75)


def test_bn_recompute_with_one_batch_is_the_exact_full_data_statistic():
    model = build_model("mlp", {"width": 32, "depth": 1, "batchnorm": True}, (1, 40), 10)
    data = random_dataset(300, 100)
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)][0]
    seen = []
    hook = bn.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].detach()))
    recompute_bn(model, dict(model.named_parameters()), data.x_train, batch_size=10_000, moments=False)
    hook.remove()
    assert len(seen) == 1 and seen[0].shape[0] == data.x_train.shape[0]
    assert torch.allclose(bn.running_mean, seen[0].mean(0), atol=1e-5)
    assert torch.allclose(bn.running_var, seen[0].var(0, unbiased=True), atol=1e-4)
    # the default pass stops at the Linear feeding this (last) BN layer and uses its input's moments
    recompute_bn(model, dict(model.named_parameters()), data.x_train, batch_size=10_000)
    assert torch.allclose(bn.running_mean, seen[0].mean(0), atol=1e-5)
    assert torch.allclose(bn.running_var, seen[0].var(0, unbiased=True), atol=1e-4)


def test_bn_recompute_forgets_the_old_statistics_and_keeps_momentum():
    model = build_model("mlp", {"width": 32, "depth": 1, "batchnorm": True}, (1, 40), 10)
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)][0]
    bn.running_mean.fill_(100.0)
    data = random_dataset(300, 100)
    recompute_bn(model, dict(model.named_parameters()), data.x_train, batch_size=64)
    assert bn.running_mean.abs().max() < 10 and bn.momentum == 0.1


def test_metrics_do_not_depend_on_the_evaluation_batch_size():
    model = build_model("mlp", {"width": 32, "depth": 2, "batchnorm": True}, (1, 40), 10)
    data = random_dataset(300, 100)
    params = {k: v.detach() for k, v in model.named_parameters()}
    a = evaluate_point(model, params, data, wd=5e-4, batch_size=7, bn_batch_size=50)
    b = evaluate_point(model, params, data, wd=5e-4, batch_size=10_000, bn_batch_size=50)
    for k, v in a.as_dict().items():
        assert np.isclose(v, b.as_dict()[k], rtol=1e-5, atol=1e-6), k


def test_train_loss_adds_the_weight_decay_term():
    model = build_model("mlp", {"width": 8, "depth": 1}, (1, 40), 10)
    data = random_dataset(300, 100)
    params = {k: v.detach() for k, v in model.named_parameters()}
    m = evaluate_point(model, params, data, wd=0.1, batch_size=64, bn_batch_size=64)
    sq = sum(p.pow(2).sum().item() for p in params.values())
    assert np.isclose(m.train_loss, m.train_nll + 0.05 * sq, rtol=1e-6)


def test_profile_ends_equal_the_endpoints_and_length_is_the_distance():
    model = build_model("mlp", {"width": 16, "depth": 2, "batchnorm": True}, (1, 40), 10)
    space = ParameterSpace(model)
    data = random_dataset(300, 100)
    a = space.flatten(model.state_dict())
    b = a + 0.1 * torch.randn(space.dim, generator=torch.Generator().manual_seed(1))
    path = LinearPath(space, a, b, points=11)
    kw = dict(wd=5e-4, batch_size=128, bn_batch_size=64)
    profile, summary = evaluate_path(path, model, data, progress=False, **kw)
    assert len(profile["t"]) == 11 and all(len(v) == 11 for v in profile.values())
    start = evaluate_point(model, space.unflatten(a), data, **kw).as_dict()
    end = evaluate_point(model, space.unflatten(b), data, **kw).as_dict()
    for k in start:
        assert profile[k][0] == start[k] and profile[k][-1] == end[k]
    assert np.isclose(summary["length"], torch.linalg.vector_norm(a - b).item(), rtol=1e-4)
