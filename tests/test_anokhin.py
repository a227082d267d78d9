"""Anokhin & Yarotsky 2020: the neuron view, Arc, least squares, WA and B-fly."""
from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from modeconn.models import build_model
from modeconn.paths import ParameterSpace
from modeconn.paths.arc import ArcPath, connect_coefficients
from modeconn.paths.lstsq import as_rows, layer_io, objective_gradient, solve_layer
from modeconn.paths.neurons import NeuronView
from modeconn.paths.units import NotAChain
from modeconn.paths.wa import BflyPath, LayerFits, WAPath
from conftest import seeded_states

# (name, params, input shape): the chains the methods claim, at test size.
ARCHS = {
    "mlp-1h": ("mlp", {"width": 16, "depth": 1}, (1, 6, 6)),
    "mlp-3l-nobias": ("mlp", {"width": 12, "depth": 2, "bias": False}, (1, 6, 6)),
    "convnet": ("convnet", {"channels": [4, 6], "hidden": 8}, (1, 8, 8)),
}


def net_pair(arch: str):
    name, params, shape = ARCHS[arch]
    model, states = seeded_states(name, params, shape)
    x = torch.randn(64, *shape, generator=torch.Generator().manual_seed(2))
    return model, NeuronView.from_model(model, shape, method="arc"), states, x


def logits(model, state, x):
    with torch.no_grad():
        return functional_call(model, state, (x,))


# ---- the neuron view ------------------------------------------------------------------------
def test_one_hidden_layer_neuron_is_the_papers_row():
    model, view, (a, _), _ = net_pair("mlp-1h")
    w1, b1, w2 = a["features.0.linear.weight"], a["features.0.linear.bias"], a["classifier.weight"]
    rows = view.neurons(a, 0)
    assert rows.shape == (16, 36 + 1 + 10)
    for i in (0, 7, 15):
        assert torch.equal(rows[i], torch.cat([w1[i], b1[i:i + 1], w2[:, i]]))


@pytest.mark.parametrize("arch", ARCHS)
def test_neurons_and_samples_round_trip_and_permuting_neurons_keeps_the_function(arch):
    model, view, (a, _), x = net_pair(arch)
    for key, tensor in a.items():
        assert torch.equal(view.unsamples(key, view.samples(key, tensor)), tensor)
    state = dict(a)
    for j in range(view.depth):
        rows = view.neurons(state, j)
        assert all(torch.equal(view.set_neurons(state, j, rows)[k], state[k]) for k in state)
        state = view.set_neurons(state, j, rows[torch.randperm(len(rows))])   # a neuron is a whole unit
    assert torch.allclose(logits(model, state, x), logits(model, a, x), atol=1e-5)


def test_arc_centre_is_the_per_coordinate_mean_of_both_nets_neurons():
    model, view, (a, b), _ = net_pair("mlp-1h")
    mu_rows = torch.cat([view.neurons(a, 0), view.neurons(b, 0)]).mean(0)
    centre = {k: view.neuron_mean(k, a[k], b[k]) for k in a}
    got = view.neurons(centre, 0)
    assert torch.allclose(got, mu_rows.expand_as(got), atol=1e-6)


def test_batchnorm_and_residual_nets_are_refused_with_the_reason():
    model = build_model("mlp", {"width": 8, "depth": 1, "batchnorm": True}, (1, 4, 4), 10)
    with pytest.raises(NotAChain, match="method=arc .*incoming and outgoing.*batchnorm=false"):
        NeuronView.from_model(model, (1, 4, 4), method="arc")


# ---- Arc ------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
def test_arc_is_exactly_a_at_its_start_and_b_at_its_end(arch):
    model, view, (a, b), _ = net_pair(arch)
    space = ParameterSpace(model)
    path = ArcPath(space, view, space.flatten(a), space.flatten(b))
    assert torch.equal(path.vector(torch.tensor([0.0])), space.flatten(a))
    assert torch.equal(path.vector(torch.tensor([1.0])), space.flatten(b))


def test_arc_on_the_output_bias_stays_on_the_segment():
    model, view, (a, b), _ = net_pair("mlp-1h")
    space = ParameterSpace(model)
    path = ArcPath(space, view, space.flatten(a), space.flatten(b))
    lo, hi = torch.minimum(a["classifier.bias"], b["classifier.bias"]), torch.maximum(a["classifier.bias"],
                                                                                      b["classifier.bias"])
    for t in torch.linspace(0, 1, 11):
        bias = path.weights(t.reshape(1))["classifier.bias"]
        assert (bias >= lo - 1e-6).all() and (bias <= hi + 1e-6).all()
        direction = b["classifier.bias"] - a["classifier.bias"]     # on the line through a and b
        s = ((bias - a["classifier.bias"]) @ direction) / (direction @ direction)
        assert torch.allclose(bias, a["classifier.bias"] + s * direction, atol=1e-6)


def test_arc_keeps_the_spread_of_independent_neurons_and_the_line_shrinks_it():
    g = torch.Generator().manual_seed(0)
    sa, sb = torch.randn(20000, 3, generator=g) + 2.0, torch.randn(20000, 3, generator=g) + 2.0
    mu = torch.cat([sa, sb]).mean(0)
    for kind, expected in (("arc", 1.0), ("linear", 0.5)):
        ca, cb, cm = connect_coefficients(kind, 0.5)
        mid = ca * sa + cb * sb + cm * mu
        assert torch.allclose(mid.var(0), torch.full((3,), expected), atol=0.05)
        assert torch.allclose(mid.mean(0), torch.full((3,), 2.0), atol=0.05)


# ---- least squares ----------------------------------------------------------------------------
@pytest.mark.parametrize("ridge", [0.0, 1e-3])
def test_least_squares_solution_is_the_optimum_of_its_objective(ridge):
    g = torch.Generator().manual_seed(0)
    h, z = torch.randn(200, 7, generator=g), torch.randn(200, 3, generator=g)
    ref_w, ref_b = torch.randn(3, 7, generator=g), torch.randn(3, generator=g)
    fit = solve_layer(h, z, ref_w, ref_b, ridge)
    grad = objective_gradient(h, z, fit.weight, fit.bias, ref_w, ref_b, ridge)
    assert grad.abs().max() < 1e-6

    def objective(w, b):
        hh = torch.cat([h, torch.ones(len(h), 1)], 1).double()
        ww = torch.cat([w, b[:, None]], 1).double()
        rr = torch.cat([ref_w, ref_b[:, None]], 1).double()
        lam = ridge * float((hh ** 2).sum(0).mean() / len(h))
        return float(((hh @ ww.T - z.double()) ** 2).sum() / len(h) + lam * ((ww - rr) ** 2).sum())
    best = objective(fit.weight, fit.bias)
    for _ in range(5):
        assert objective(fit.weight + 1e-2 * torch.randn(3, 7, generator=g), fit.bias) > best


def test_a_convolution_refit_on_its_own_patches_recovers_its_weights():
    model, view, (a, _), x = net_pair("convnet")
    name = view.chain.layers[1].weight.rsplit(".", 1)[0]
    inputs, outputs = layer_io(model, a, x, [name])[name]
    h, z = as_rows(model.get_submodule(name), inputs, outputs)
    fit = solve_layer(h, z, torch.zeros_like(a[name + ".weight"]), torch.zeros_like(a[name + ".bias"]), 0.0)
    assert fit.relative_residual < 1e-9
    assert torch.allclose(fit.weight, a[name + ".weight"], atol=1e-4)


# ---- WA and B-fly -------------------------------------------------------------------------------
def layerwise(arch, kind, connect="arc"):
    model, view, (a, b), x = net_pair(arch)
    space = ParameterSpace(model)
    fits = LayerFits(model, view, a, b, x, ridge=1e-4, fit_rows=0)
    path = (WAPath if kind == "wa" else BflyPath)(space, fits, connect_kind=connect, points_per_segment=5)
    return model, space, path, (a, b), x


@pytest.mark.parametrize("kind", ["wa", "bfly"])
@pytest.mark.parametrize("arch", ARCHS)
def test_layerwise_paths_start_at_a_end_at_b_and_join_continuously(arch, kind):
    model, space, path, (a, b), x = layerwise(arch, kind)
    assert path.grid()[0, 0] == 0 and path.grid()[-1, 0] == path.segments
    assert torch.equal(path.vector(torch.tensor([0.0])), space.flatten(a))
    assert torch.equal(path.vector(torch.tensor([float(path.segments)])), space.flatten(b))
    for s in range(1, path.segments):   # the end of segment s - 1 is the start of segment s
        left = space.flatten(path.state_at(s - 1, 1.0))
        right = space.flatten(path.state_at(s, 0.0))
        assert torch.allclose(left, right, atol=1e-5), (s, float((left - right).abs().max()))
    near = [space.flatten(path.state_at(s, tau)) for s, tau in ((0, 1e-4), (0, 1 - 1e-4))]
    assert torch.allclose(near[0], space.flatten(a), atol=1e-3)   # no jump inside a segment's ends
    assert torch.allclose(near[1], path.vector(torch.tensor([1.0])), atol=1e-3)


@pytest.mark.parametrize("arch", ARCHS)
def test_wa_refit_beats_leaving_the_next_layer_and_its_residual_is_optimal(arch):
    """Along segment 0 the refit layer absorbs the first layer's move: the logits on the fitting
    data are closer to A's than with the next layer left as A's, and the refit is the optimum."""
    model, space, path, (a, b), x = layerwise(arch, "wa")
    reference = logits(model, a, x)
    for tau in (0.25, 0.5, 0.75):
        state = path.state_at(0, tau)
        unfitted = {**state, **{k: a[k] for k in path.fits.layers[1] if k}}
        wa_error = float(((logits(model, state, x) - reference) ** 2).mean())
        assert wa_error < float(((logits(model, unfitted, x) - reference) ** 2).mean())
        h = path.fits.features(state, 1)
        fit = path.fits.fit(1, h)
        grad = objective_gradient(h, path.fits.targets[1], fit.weight, fit.bias,
                                  *path.fits.layer(path.fits.a, 1), path.fits.ridge)
        assert grad.abs().max() < 1e-6
    rows = path.describe()
    assert rows[0]["fits"] == path.fits.modules[1] and rows[-1]["kind"] == "output"
    assert rows[0]["max_residual"] is not None and rows[0]["correction"] < 1e-3


def test_one_hidden_layer_wa_keeps_a_s_function_on_the_fitting_data():
    """More hidden units than fitting examples: the refit output layer reproduces A's logits
    exactly all along the first segment (the paper's WA, one hidden layer)."""
    model, view, (a, b), x = net_pair("mlp-1h")
    x = x[:12]
    fits = LayerFits(model, view, a, b, x, ridge=1e-9, fit_rows=0)
    path = WAPath(ParameterSpace(model), fits, connect_kind="linear", points_per_segment=5)
    reference = logits(model, a, x)
    for t in (0.25, 0.5, 0.75, 1.0):
        assert torch.allclose(logits(model, path.weights(torch.tensor([t])), x), reference, atol=1e-3)


def test_wa_segments_and_bfly_segments_count_the_layers():
    for arch, layers in (("mlp-1h", 2), ("mlp-3l-nobias", 3), ("convnet", 4)):
        _, _, wa, _, _ = layerwise(arch, "wa")
        _, _, bfly, _, _ = layerwise(arch, "bfly")
        assert wa.segments == layers and bfly.segments == layers - 1
        assert len(wa.describe()) == layers and len(bfly.describe()) == layers - 1


# ---- runs -----------------------------------------------------------------------------------------
LATENT = ("arc", "gauss", "flow")


@pytest.mark.parametrize("method,align,arch", [("arc", "none", "mlp"), ("arc", "ot", "mlp"), ("wa", "ot", "mlp"),
                                               ("bfly", "none", "mlp"), ("wa", "none", "convnet"),
                                               ("gauss", "ot", "mlp"), ("gauss", "none", "convnet")])
def test_runs_record_the_connection_and_end_at_the_endpoints(run_config, shared_store, method, align, arch):
    from modeconn.app import run
    from modeconn.results import validate
    extra = ["arch.params.channels=[4,6]", "arch.params.hidden=8"] if arch == "convnet" else ["arch.params.width=32"]
    results = run(run_config("dataset=digits", f"method={method}", f"align={align}", f"arch={arch}", *extra,
                             "method.points=5" if method in LATENT else "method.points_per_segment=3",
                             *([] if method in LATENT else ["method.fit_samples=400", "method.fit_rows=3000"]),
                             store=shared_store))
    assert results["status"] == "ok" and validate(results) == []
    section, profile = results["anokhin"], results["path"]
    assert section["method"] == method and section["align"] == align
    assert ("neuron matching (OT)" in section["cost"]) == (align == "ot")
    for end, i in ((0, 0), (-1, 1)):   # the path's ends are the endpoints, as the protocol measures them
        assert profile["test_err"][end] == pytest.approx(results["endpoints"][i]["test_err"], abs=1e-9)
    if method not in LATENT:
        assert section["fit_samples"] == 400
        assert profile["t"][-1] == section["segments_count"] == len(section["segments"])
    if align == "ot":
        assert results["alignment"]["method"] == "ot"


def test_a_batchnorm_net_is_refused_before_training(run_config, tmp_path):
    from modeconn.app import run
    from modeconn.results import read_results
    cfg = run_config("dataset=digits", "method=wa", "arch.params.batchnorm=true", store=tmp_path / "s")
    with pytest.raises(NotAChain, match="method=wa .*batchnorm=false"):
        run(cfg)
    results = read_results(cfg.output_dir)
    assert results["status"] == "failed" and "batchnorm=false" in results["error"]
    assert not (tmp_path / "s" / "endpoints").exists() or not any((tmp_path / "s" / "endpoints").iterdir())


# ---- the latent space: Gaussianisation and the flow ----------------------------------------------
def test_gaussianisation_round_trips_and_maps_the_samples_to_normal_quantiles():
    from modeconn.paths.latent import Gaussianizer
    g = torch.Generator().manual_seed(0)
    samples = torch.cat([torch.rand(500, 3, generator=g) ** 3, torch.zeros(500, 1)], 1)   # skewed + a constant
    t = Gaussianizer(samples)
    z = t(samples)
    assert torch.allclose(t.inverse(z), samples, atol=1e-6)
    assert abs(float(z[:, :3].mean())) < 0.01 and abs(float(z[:, :3].std()) - 1) < 0.05
    outside = torch.tensor([[-1.0, 2.0, 5.0, 0.0]])                     # beyond the samples: linear, invertible
    assert torch.allclose(t.inverse(t(outside)), outside, atol=1e-6)


def test_neuron_flow_round_trips_neurons():
    from modeconn.training.neuron_flow import train_flow
    from omegaconf import OmegaConf
    model, view, (a, b), _ = net_pair("mlp-1h")
    rows = torch.cat([view.partition(a)[0], view.partition(b)[0]])
    m = OmegaConf.create({"pool": 0, "transforms": 2, "hidden": 16, "epochs": 3, "lr": 1e-3, "batch_size": 8})
    spec = {"flow": {**dict(m), "seed": 0}}
    flow, info = train_flow(rows, spec)
    with torch.no_grad():
        assert torch.allclose(flow.inverse(flow(rows)), rows, atol=1e-4)
    assert len(info["valid_nll_per_epoch"]) == 3 and info["valid_nll"] == min(info["valid_nll_per_epoch"])


@pytest.mark.parametrize("arch", ARCHS)
def test_latent_arc_is_exact_at_its_ends_and_continuous(arch):
    from modeconn.paths.latent import Gaussianizer, LatentArcPath
    model, view, (a, b), _ = net_pair(arch)
    space = ParameterSpace(model)
    parts_a, parts_b = view.partition(a), view.partition(b)
    assert sum(p.numel() for p in parts_a) + (a["classifier.bias"].numel() if "classifier.bias" in a else 0) \
        == space.dim                                                    # every weight in one neuron
    path = LatentArcPath(space, view, a, b, [Gaussianizer(torch.cat([x, y])) for x, y in zip(parts_a, parts_b)])
    assert path.round_trip_error() < 1e-5
    assert torch.equal(path.vector(torch.tensor([0.0])), space.flatten(a))
    assert torch.equal(path.vector(torch.tensor([1.0])), space.flatten(b))
    assert torch.allclose(path.vector(torch.tensor([1e-6])), space.flatten(a), atol=1e-3)
    assert torch.allclose(path.vector(torch.tensor([1 - 1e-6])), space.flatten(b), atol=1e-3)


def test_flow_run_trains_its_pool_and_flow_once_and_reuses_them(run_config, shared_store):
    from modeconn.app import run
    from modeconn.results import validate
    overrides = ["dataset=digits", "method=flow", "arch.params.width=16", "arch.params.depth=1", "method.points=3",
                 "method.pool=2", "method.epochs=2", "method.hidden=16", "method.transforms=2"]
    first = run(run_config(*overrides, store=shared_store))
    assert first["status"] == "ok" and validate(first) == []
    flows = first["anokhin"]["flows"]
    assert len(flows) == 1 and not flows[0]["cached"] and flows[0]["train_neurons"] == 2 * 16 - 3   # a tenth held out
    assert first["anokhin"]["round_trip_error"] < 1e-4
    again = run(run_config(*overrides, "seed=1", store=shared_store))   # other endpoints, the same global model
    assert again["anokhin"]["flows"][0]["cached"] and again["anokhin"]["flows"][0]["key"] == flows[0]["key"]
    endpoint_keys = {e["key"] for r in (first, again) for e in r["endpoints"]}
    assert len(endpoint_keys) == 4


@pytest.mark.parametrize("arch", ARCHS)
def test_wa_moves_the_output_layer_on_the_line_where_the_loss_stays_below_its_ends(arch):
    """The last segment moves only the output layer, straight: cross-entropy is convex in it."""
    import torch.nn.functional as F
    model, space, path, (a, b), x = layerwise(arch, "wa")
    y = torch.randint(0, 10, (len(x),), generator=torch.Generator().manual_seed(5))
    last = path.segments - 1
    assert path.describe()[last]["connect"] == "linear" and path.describe()[0]["connect"] == "arc"
    losses = [float(F.cross_entropy(logits(model, path.state_at(last, tau), x), y)) for tau in torch.linspace(0, 1, 9)]
    assert max(losses) <= max(losses[0], losses[-1]) + 1e-6
    hidden = {k for k in space.names if k not in path.fits.layers[-1]}
    start, end = path.state_at(last, 0.0), path.state_at(last, 1.0)
    assert all(torch.equal(start[k], end[k]) for k in hidden)
