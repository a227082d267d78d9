"""Transformers (issue 17): timm's ViT and Hugging Face's GPT-2 -- their permutation groups
(stream, MLP units, heads as blocks, q/k and v dims inside each head), planted permutations
that keep the logits and that both matchers undo exactly, and runs on tiny configs."""
from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from modeconn.align import match, permutation_spec
from modeconn.align.groups import UnsupportedGraph
from modeconn.align.permute import inverse, permute_state, random_permutations
from modeconn.models import build_model

TINY = {
    "vit": ({"width": 16, "depth": 2, "heads": 4, "patch": 4, "mlp_ratio": 2.0}, (1, 8, 8), 5),
    "gpt2": ({"width": 16, "depth": 2, "heads": 4, "mlp_ratio": 2.0}, (12,), 11),
}


def _net(arch, seed=0):
    params, shape, classes = TINY[arch]
    torch.manual_seed(seed)
    model = build_model(arch, params, shape, classes).eval()
    with torch.no_grad():   # trained-like LayerNorms and biases (fresh ones are 1 and 0: symmetric)
        g = torch.Generator().manual_seed(seed + 100)
        for name, p in model.named_parameters():
            if p.dim() == 1 or "token" in name or "pos" in name or "wpe" in name:
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model, shape, classes


def _inputs(arch, shape, classes, n=24):
    g = torch.Generator().manual_seed(7)
    if arch == "gpt2":
        return torch.randint(0, classes, (n, *shape), generator=g).float()
    return torch.randn(n, *shape, generator=g)


@pytest.mark.parametrize("arch", ["vit", "gpt2"])
def test_groups_of_a_transformer(arch):
    model, shape, _ = _net(arch)
    spec = permutation_spec(model, shape)
    depth, heads = 2, 4
    # one stream, per block: heads + (qk, v) per head + the MLP
    assert len(spec.groups) == 1 + depth * (1 + 2 * heads + 1)
    stream = spec.group("stream")
    assert stream.size == 16 and len(stream.probes) == depth
    head_groups = [g for g in spec.groups if g.heads]
    assert [(g.size, len(g.heads)) for g in head_groups] == [(heads, heads)] * depth
    assert all(spec.group(w).size == 16 // heads for g in head_groups for slot in g.heads for w in slot)


@pytest.mark.parametrize("arch", ["vit", "gpt2"])
def test_planted_permutation_keeps_the_logits_and_both_matchers_undo_it(arch):
    model, shape, classes = _net(arch)
    spec = permutation_spec(model, shape)
    state = dict(model.state_dict())
    planted = random_permutations(spec, torch.Generator().manual_seed(3))
    assert all(not torch.equal(p, torch.arange(len(p))) for p in planted.values() if len(p) > 2)
    copy = permute_state(state, spec, planted)
    x = _inputs(arch, shape, classes)
    with torch.no_grad():
        ref = functional_call(model, state, (x,))
        assert (functional_call(model, copy, (x,)) - ref).abs().max() < 1e-4
        moved = [k for k in state if not torch.equal(copy[k], state[k])]
        assert len(moved) == len(spec.axes_by_key())      # every tensor in a group really moved
    for method in ("weight", "activation"):
        found, _ = match(method, model, spec, state, copy, x=x, samples=len(x))
        assert all(torch.equal(found[k], inverse(planted, spec)[k]) for k in planted), method
        back = permute_state(copy, spec, found)
        assert all(torch.equal(back[k], state[k]) for k in state)


def test_ot_refuses_heads_and_unknown_configs_are_refused():
    model, shape, _ = _net("vit")
    spec = permutation_spec(model, shape)
    with pytest.raises(ValueError, match="heads"):
        match("ot", model, spec, model.state_dict(), model.state_dict())
    from timm.models.vision_transformer import VisionTransformer
    qk = VisionTransformer(img_size=8, patch_size=4, in_chans=1, num_classes=3, embed_dim=16, depth=1, num_heads=4,
                           qk_norm=True)
    with pytest.raises(UnsupportedGraph, match="q_norm"):
        permutation_spec(qk, (1, 8, 8))


def test_gpt2_is_a_per_token_classifier_with_tied_embeddings():
    model, shape, classes = _net("gpt2")
    x = _inputs("gpt2", shape, classes, 3)
    logits = model(x)
    assert logits.shape == (3, classes, 12)
    state = model.state_dict()
    assert "model.lm_head.weight" not in state                   # the tied matrix once
    assert model.model.lm_head.weight is model.model.transformer.wte.weight
    fresh, _, _ = _net("gpt2", seed=1)
    fresh.load_state_dict(state)
    assert torch.equal(fresh(x), logits) and fresh.model.lm_head.weight is fresh.model.transformer.wte.weight
    # causal: the logits at position t do not depend on later tokens
    later = x.clone()
    later[:, 6:] = (later[:, 6:] + 1) % classes
    assert torch.allclose(model(later)[..., :6], logits[..., :6], atol=1e-5)


# -- every path on a transformer (tiny GPT-2 on a tiny text; one shared store) -------------------

GPT2_RUN = ("dataset=text", "arch=gpt2", "dataset.context=8", "dataset.train_size=96", "dataset.test_size=24",
            "arch.params.width=16", "arch.params.depth=1", "arch.params.heads=2", "endpoint.batch_size=32",
            "endpoint.limit_batches=2", "eval.batch_size=64")
METHODS = {
    "linear-activation": ("method=linear", "method.points=3", "align=activation", "align.samples=32"),
    "bezier-weight": ("method=bezier", "method.points=3", "align=weight"),
    "polychain": ("method=polychain", "method.points=3"),
    "fge": ("method=fge",),
    "ensemble": ("method=ensemble", "method.budget=2"),
    "simplex": ("method=simplex", "method.vertices=2", "method.samples=2", "method.equal_cost_baseline=false"),
    "complex": ("method=complex", "method.connectors=1", "method.samples=2", "method.points=3",
                "method.epochs_per_vertex=1"),
    "subspace": ("method=subspace", "method.grid=1", "method.points=3", "method.train.epochs=1"),
    "cut": ("method=cut", "method.dim=4", "method.train.epochs=1"),
}


@pytest.mark.slow
def test_every_path_runs_on_gpt2_and_per_token_metrics(run_config, shared_store):
    """One run of each method family on a tiny GPT-2 (2 smoke epochs of 2 batches): each finishes ok,
    errors are per-token percentages (multiples of 100 / tokens), and the dropout path refuses."""
    from modeconn.app import run
    from modeconn.paths.units import NotAChain
    tokens = 24 * 8
    for name, overrides in METHODS.items():
        results = run(run_config(*GPT2_RUN, *overrides, store=shared_store))
        assert results["status"] == "ok", name
        if "path" in results:
            err = results["path"]["test_err"][0]
            assert abs(err * tokens / 100 - round(err * tokens / 100)) < 1e-6, name
    with pytest.raises(NotAChain, match="dropout"):
        run(run_config(*GPT2_RUN, "method=dropout", store=shared_store))


def test_vit_line_after_weight_matching_in_a_run(run_config, shared_store):
    """A ViT run with align=weight: the alignment is recorded and leaves the function unchanged."""
    from modeconn.app import run
    results = run(run_config("dataset=digits", "arch=vit", "arch.params.patch=4", "arch.params.width=16",
                             "arch.params.depth=1", "dataset.train_size=128", "dataset.test_size=32",
                             "endpoint.limit_batches=2", "method=linear", "method.points=3", "align=weight",
                             store=shared_store))
    alignment = results["alignment"]
    assert alignment["max_logit_change"] < 1e-4 and alignment["units"] > 0
    assert any(g["name"].endswith("attn.heads") for g in alignment["groups"])


def test_report_table_puts_each_barrier_in_its_column():
    from modeconn.report.transformers import tables

    def run(arch, method, align, barrier, seed):
        return {"dataset": "text" if arch == "gpt2" else "fashion_mnist", "arch": arch, "method": method,
                "align": align, "seed": seed, "config": {"method": {"num_bends": 3}},
                "summary": {"barrier": {"test_err": barrier}},
                "endpoints": [{"key": f"{arch}{seed}a", "test_err": 10.0}, {"key": f"{arch}{seed}b", "test_err": 12.0}]}
    runs = [run("vit", "linear", "none", 8.0, 0), run("vit", "linear", "none", 6.0, 1),
            run("vit", "linear", "weight", 2.0, 0), run("vit", "bezier", "none", 1.0, 0),
            run("gpt2", "linear", "activation", 0.5, 0), run("mlp", "linear", "none", 99.0, 0)]
    [table] = tables(runs)
    rows = {r.label: r.cells for r in table.rows}
    assert set(rows) == {"vit / fashion_mnist", "gpt2 / text"}
    assert rows["vit / fashion_mnist"][:5] == ["11.00 ± 1.00", "7.00 ± 1.00", "2.00", "", "1.00"]
    assert rows["gpt2 / text"][3] == "0.50" and rows["gpt2 / text"][5] == "1"


@pytest.mark.parametrize(("arch", "shape"), [("vit", (1, 28, 28)), ("gpt2", (64,))])
def test_arch_config_defaults_build(arch, shape):
    from pathlib import Path

    from omegaconf import OmegaConf

    from modeconn.models import default_params
    cfg = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "arch" / f"{arch}.yaml")
    assert OmegaConf.to_container(cfg.params) == default_params(arch)
    model = build_model(arch, cfg.params, shape, 10)
    assert sum(p.numel() for p in model.parameters()) > 0
    with pytest.raises(ValueError, match="input shape"):
        build_model(arch, cfg.params, (1, 40) if arch == "vit" else (1, 8, 8), 10)
