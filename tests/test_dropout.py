"""Kuditipudi et al. 2019: dropout stability and the constructed path (paths/dropout.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from modeconn.app import run
from modeconn.evaluation.stability import Losses, search_path_masks, stability_curve
from modeconn.models import build_model
from modeconn.paths import ParameterSpace
from modeconn.paths.dropout import (FUNCTION_PRESERVING, TOP_LAYER, PiecewiseLinearPath, construct, draw_masks,
                                    dropped_state)
from modeconn.paths.units import NotAChain, UnitChain
from modeconn.results import read_results, validate
from conftest import seeded_states

# (name, params, input shape): every chain family the construction claims, at test size.
ARCHS = {
    "mlp": ("mlp", {"width": 12, "depth": 2}, (1, 6, 6)),
    "kuditipudi-convnet": ("convnet", {"channels": [6, 6, 6], "bias": False, "hidden": 0}, (1, 8, 8)),
    "convnet-1d-dropout": ("convnet", {"channels": [4, 6], "hidden": 8, "dropout": 0.3}, (1, 12)),
    "vgg11": ("vgg16", {"depth": 11, "width": 1 / 16, "dropout": 0.5}, (3, 16, 16)),
}


def net_pair(arch: str):
    name, params, shape = ARCHS[arch]
    model, states = seeded_states(name, params, shape, bias_std=0.3)   # larger biases than the init
    chain = UnitChain.from_model(model, shape)
    x = torch.randn(48, *shape, generator=torch.Generator().manual_seed(2))
    return model, chain, states, x


def built(arch: str, variant: str, keep: float = 0.5):
    model, chain, (a, b), x = net_pair(arch)
    masks_a, masks_b = draw_masks(chain, keep, torch.Generator().manual_seed(3), disjoint=2)
    vertices, kinds = construct(variant, a, b, chain, masks_a, masks_b, keep)
    return model, chain, (a, b), x, vertices, kinds, (masks_a, masks_b)


def logits(model, state, x):
    return functional_call(model, state, (x,))


def mix(s0, s1, t: float):
    return {k: (1 - t) * s0[k] + t * s1[k] for k in s0}


@pytest.mark.parametrize("variant", ["dropout", "noise"])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_path_starts_at_a_and_ends_at_b_exactly(arch, variant):
    model, chain, (a, b), x, vertices, kinds, _ = built(arch, variant)
    space = ParameterSpace(model)
    path = PiecewiseLinearPath(space, [space.flatten(v) for v in vertices], points_per_segment=4)
    assert path.segments == len(kinds)
    assert torch.equal(path.vector(torch.tensor([0.0])), space.flatten(a))
    assert torch.equal(path.vector(torch.tensor([float(path.segments)])), space.flatten(b))
    grid = path.grid().reshape(-1)
    assert len(grid) == 3 * path.segments + 1
    for k, v in enumerate(vertices):   # every vertex is on the grid, exactly
        assert float(k) in grid.tolist()
        assert torch.equal(path.vector(torch.tensor([float(k)])), space.flatten(v))


@pytest.mark.parametrize("variant", ["dropout", "noise"])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_function_preserving_segments_change_no_output(arch, variant):
    model, chain, _, x, vertices, kinds, _ = built(arch, variant)
    preserving = [k for k, kind in enumerate(kinds) if kind == FUNCTION_PRESERVING]
    assert preserving
    with torch.no_grad():
        for k in preserving:
            s0, s1 = vertices[k], vertices[k + 1]
            assert any(not torch.equal(s0[n], s1[n]) for n in s0)   # the segment moves weights ...
            start = logits(model, s0, x)
            assert start.abs().max() > 1e-2
            for t in (0.3, 0.5, 1.0):                                 # ... and no output
                assert (logits(model, mix(s0, s1, t), x) - start).abs().max() <= 1e-5


@pytest.mark.parametrize("variant", ["dropout", "noise"])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_top_layer_segments_move_only_the_output_layer_and_stay_below_their_ends(arch, variant):
    model, chain, _, x, vertices, kinds, _ = built(arch, variant)
    y = torch.randint(0, 10, (len(x),), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        for k, kind in enumerate(kinds):
            if kind != TOP_LAYER:
                continue
            s0, s1 = vertices[k], vertices[k + 1]
            assert {n for n in s0 if not torch.equal(s0[n], s1[n])} <= set(chain.top_keys)
            losses = [F.cross_entropy(logits(model, mix(s0, s1, t / 10), x), y).item() for t in range(11)]
            assert max(losses) <= max(losses[0], losses[-1]) + 1e-6   # convexity in the top layer


def test_segment_count_grows_linearly_with_depth():
    counts = {}
    for depth in (1, 2, 3, 5):
        torch.manual_seed(0)
        model = build_model("mlp", {"width": 8, "depth": depth}, (4,), 3)
        chain = UnitChain.from_model(model, (4,))
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        masks = draw_masks(chain, 0.5, torch.Generator().manual_seed(0), disjoint=2)
        counts[depth] = {v: len(construct(v, state, state, chain, *masks, 0.5)[1]) for v in ("dropout", "noise")}
    assert {d: c["dropout"] for d, c in counts.items()} == {d: 4 * d + 1 for d in counts}
    assert {c["noise"] for c in counts.values()} == {5}   # bounded at any depth


@pytest.mark.parametrize("arch", ["mlp", "kuditipudi-convnet"])
def test_dropped_state_equals_dropout_applied_to_the_activations(arch):
    """theta_i from weights (outgoing columns zeroed / rescaled) against masking the hidden
    activations themselves with forward hooks: an independent computation."""
    model, chain, (a, _), x, *_ = net_pair(arch)
    keep = 0.5
    (masks,) = draw_masks(chain, keep, torch.Generator().manual_seed(5))
    blocks = list(model.features)          # hidden layer j's output: features[j] (ReLU, pool)
    assert len(blocks) == chain.depth
    for start in range(chain.depth):
        handles = []
        for j in range(start, chain.depth):
            factor = torch.zeros(chain.layers[j].size)
            factor[masks[j]] = 1 / keep
            shape = (1, -1) + (1,) * (x.dim() - 2 if arch != "mlp" else 0)
            handles.append(blocks[j].register_forward_hook(
                lambda mod, inp, out, f=factor, s=shape: out * f.view(*s)))
        with torch.no_grad():
            expected = logits(model, a, x)
            for h in handles:
                h.remove()
            got = logits(model, dropped_state(a, chain, masks, keep, start=start), x)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ["mlp", "kuditipudi-convnet", "vgg11"])
def test_lemma_vertices_are_the_dropped_out_nets_whose_gaps_bound_the_path(arch):
    """After the lemma's first top-layer move A computes theta_{L-1}, after the next theta_{L-2},
    ... down to theta_0: the functions whose losses eps is measured on."""
    model, chain, (a, _), x, vertices, kinds, (masks_a, _) = built(arch, "dropout")
    depth = chain.depth
    with torch.no_grad():
        for step in range(depth):
            expected = logits(model, dropped_state(a, chain, masks_a, 0.5, start=depth - 1 - step), x)
            torch.testing.assert_close(logits(model, vertices[1 + 2 * step], x), expected, rtol=1e-4, atol=1e-5)
        # the middle: A's dropped net, then B's, then B's lemma walked back
        assert kinds[2 * depth - 1: 2 * depth + 2] == [FUNCTION_PRESERVING, TOP_LAYER, FUNCTION_PRESERVING]


def test_masks_for_the_path_are_disjoint_and_keep_the_fraction():
    _, chain, *_ = net_pair("mlp")
    a, b = draw_masks(chain, 0.5, torch.Generator().manual_seed(0), disjoint=2)
    for layer, ma, mb in zip(chain.layers, a, b):
        assert len(ma) == len(mb) == layer.size // 2
        assert not set(ma.tolist()) & set(mb.tolist())
    with pytest.raises(ValueError, match="keep <= 0.5"):
        draw_masks(chain, 0.6, disjoint=2)
    (single,) = draw_masks(chain, 0.95)          # stability alone may keep more
    assert [len(m) for m in single] == [11, 11]


def test_stability_curve_and_search_order_their_draws():
    model, chain, states, x = net_pair("mlp")
    y = torch.randint(0, 10, (len(x),), generator=torch.Generator().manual_seed(1))
    losses = Losses(model, x, y, batch_size=16)
    curve = stability_curve(losses, chain, states[0], [0.5, 0.9], draws=4, generator=torch.Generator().manual_seed(0))
    assert [row["keep"] for row in curve] == [0.5, 0.9]
    for row in curve:
        assert row["best"] <= row["typical"] <= row["worst"] and row["best"] <= row["mean"] <= row["worst"]
    ma, mb, record = search_path_masks(losses, chain, states, 0.5, draws=5, starts=[0, 1],
                                       generator=torch.Generator().manual_seed(0))
    assert record["best_gap"] <= record["typical_gap"] and record["draws"] == 5
    assert record["train_nll"] == [losses(s) for s in states]   # the runner reuses these
    gap = max(max(losses.suffixes(s, chain, m, 0.5, [0, 1])) - losses(s) for s, m in zip(states, (ma, mb)))
    assert gap == pytest.approx(record["best_gap"])
    assert all(not set(p.tolist()) & set(q.tolist()) for p, q in zip(ma, mb))


@pytest.mark.parametrize("name, params, match", [
    ("mlp", {"width": 8, "batchnorm": True}, "batchnorm=false"),
    ("resnet20", {"width": 4}, "BatchNorm"),
])
def test_networks_outside_the_construction_are_refused_with_the_reason(name, params, match):
    model = build_model(name, params, (3, 8, 8), 10)
    with pytest.raises(NotAChain, match=match):
        UnitChain.from_model(model, (3, 8, 8))



def test_dropout_run_stays_under_its_bound(run_config, shared_store):
    results = run(run_config("dataset=digits", "method=dropout", "arch.params.width=64", "arch.params.dropout=0.5",
                             "method.draws=3", "method.stability.draws=2", "method.points_per_segment=3",
                             "method.line_points=5", store=shared_store))
    assert validate(results) == []
    segments, d = results["segments"], results["dropout"]
    assert len(segments) == d["segments"] == 4 * 2 + 1
    profile = results["path"]
    assert profile["t"][0] == 0 and profile["t"][-1] == len(segments) and len(profile["t"]) == 2 * len(segments) + 1
    for end, i in ((0, 0), (-1, 1)):   # the path's ends are the endpoints, as measured by the protocol
        assert profile["test_err"][end] == results["endpoints"][i]["test_err"]
    losses = [e["train_nll"] for e in d["endpoints"]]
    assert results["bound"] == pytest.approx(max(losses) + results["epsilon"])
    assert max(profile["train_nll"]) <= results["bound"] + 1e-6 and d["bound_holds"]
    for seg in segments:
        if seg["kind"] == FUNCTION_PRESERVING:
            assert seg["max_logit_change"] <= 1e-5
            assert seg["train_nll_max"] == pytest.approx(seg["train_nll_start"], abs=1e-6)
        else:
            assert seg["train_nll_max"] <= max(seg["train_nll_start"], seg["train_nll_end"]) + 1e-6
    assert [row["keep"] for row in d["stability"][0]] == pytest.approx([0.5 + 0.05 * i for i in range(10)])
    assert len(results["line"]["t"]) == 5
    out = Path(results["config"]["output_dir"])
    assert (out / "path.png").exists() and (out / "stability.png").exists()
    assert read_results(out)["status"] == "ok"


def test_noise_variant_run_has_five_segments(run_config, shared_store):
    results = run(run_config("dataset=digits", "method=dropout", "method.variant=noise", "arch.params.width=64",
                             "arch.params.dropout=0.5", "method.draws=2", "method.stability.keeps=[0.5]",
                             "method.stability.draws=2", "method.points_per_segment=3", "method.line_points=0",
                             store=shared_store))
    assert validate(results) == []
    assert [s["kind"] for s in results["segments"]] == ["all_layers", FUNCTION_PRESERVING, TOP_LAYER,
                                                        FUNCTION_PRESERVING, "all_layers"]
    assert list(results["dropout"]["endpoints"][0]["dropped_train_nll"]) == ["0"]   # only theta_0 is visited
    assert "line" not in results


def test_the_gpu_recipe_vgg11_is_a_chain_of_ten_hidden_layers():
    """experiment=kuditipudi2019's CIFAR-10 command composes to VGG-11 without BN, whose ten hidden
    layers (8 conv, 2 FC) the construction accepts (41 segments, as the test-size VGG-11 above)."""
    from conftest import compose_config
    cfg = compose_config("experiment=kuditipudi2019", "dataset=cifar10", "arch=vgg16", "arch.params.depth=11",
                         "trainer=gpu", "arch.params.dropout=0.5", "method.variant=dropout")
    assert cfg.method.name == "dropout" and cfg.method.keep == 0.5
    model = build_model(cfg.arch.name, cfg.arch.params, (3, 32, 32), 10)
    chain = UnitChain.from_model(model, (3, 32, 32))
    assert chain.depth == 10 and [layer.size for layer in chain.layers][-3:] == [512, 512, 512]
