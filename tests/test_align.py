"""Permutation alignment: traced groups, the three matchers, and alignment inside a run."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn
from torch.func import functional_call

from modeconn.align import match, permutation_spec
from modeconn.align.groups import Axis, PermutationGroup, PermutationSpec, UnsupportedGraph
from modeconn.align.permute import as_matrix, inverse, mix_state, permute_state, random_permutations
from modeconn.models import build_model

# Every architecture, small enough for a quick test, with the input kinds it meets.
ARCHS = [
    ("mlp", {"width": 48}, (1, 12, 12)),
    ("mlp", {"width": 32, "depth": 3, "batchnorm": True}, (1, 40)),
    ("convnet", {"channels": [8, 16], "hidden": 24}, (1, 12, 12)),
    ("convnet", {"channels": [8, 16], "hidden": 24, "batchnorm": True}, (1, 40)),
    ("vgg16", {"width": 0.125}, (3, 16, 16)),
    ("vgg16bn", {"width": 0.125}, (3, 16, 16)),
    ("resnet20", {"width": 0.5}, (3, 8, 8)),
    ("resnet20", {"width": 0.5}, (1, 40)),
    ("preresnet110", {"depth": 20, "width": 0.5}, (3, 8, 8)),
    ("preresnet164", {"depth": 11, "width": 0.5}, (3, 8, 8)),
    ("wrn28x10", {"depth": 10, "widen": 1}, (3, 8, 8)),
    ("tinyten", {}, (3, 12, 12)),
]
IDS = [f"{name}-{'x'.join(map(str, shape))}{'-bn' if p.get('batchnorm') else ''}" for name, p, shape in ARCHS]


def _net(name, params, shape, seed=0):
    """A randomly initialised net in eval mode with non-trivial BN statistics (as after training)."""
    torch.manual_seed(seed)
    model = build_model(name, params, shape, 10)
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.weight.data = 0.5 + torch.rand(n, generator=g)
            m.bias.data = 0.1 * torch.randn(n, generator=g)
            m.running_mean = 0.1 * torch.randn(n, generator=g)
            m.running_var = 0.5 + torch.rand(n, generator=g)
    return model.eval()


def _logits(model, state, x):
    with torch.no_grad():
        return functional_call(model, state, (x,))


@pytest.mark.parametrize(("name", "params", "shape"), ARCHS, ids=IDS)
def test_random_permutation_of_every_group_keeps_the_logits(name, params, shape):
    model = _net(name, params, shape)
    spec = permutation_spec(model, shape)
    state = dict(model.state_dict())
    perms = random_permutations(spec, torch.Generator().manual_seed(1))
    permuted = permute_state(state, spec, perms)
    x = torch.randn(8, *shape)
    ref = _logits(model, state, x)
    assert torch.allclose(_logits(model, permuted, x), ref, atol=1e-4 * ref.abs().max().item())
    # it really moved things: every group's weights changed
    assert all(not torch.equal(permuted[g.axes[0].key], state[g.axes[0].key]) for g in spec.groups)
    # the matrix form (PAM's relaxation) agrees with indexing for permutation matrices
    mixed = mix_state(state, spec, {k: as_matrix(p) for k, p in perms.items()})
    assert all(torch.allclose(mixed[k], permuted[k], atol=1e-6) for k in state)


@pytest.mark.parametrize("method", ["weight", "activation", "ot"])
@pytest.mark.parametrize(("name", "params", "shape"), ARCHS, ids=IDS)
def test_aligning_a_permuted_copy_recovers_the_original_exactly(name, params, shape, method):
    model = _net(name, params, shape)
    spec = permutation_spec(model, shape)
    state = dict(model.state_dict())
    planted = random_permutations(spec, torch.Generator().manual_seed(2))
    copy = permute_state(state, spec, planted)
    found, _ = match(method, model, spec, state, copy, x=torch.randn(64, *shape), samples=64)
    assert all(torch.equal(found[k], inverse(planted)[k]) for k in planted)
    back = permute_state(copy, spec, found)
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_residual_streams_share_one_permutation_and_flatten_makes_blocks():
    resnet = _net("resnet20", {"width": 0.5}, (3, 8, 8))
    spec = permutation_spec(resnet, (3, 8, 8))
    # 3 streams (stem/shortcut convs + every block's second conv) and one group inside each of 9 blocks
    assert len(spec.groups) == 3 + 9
    stream = spec.groups[0]
    producers = {a.key for a in stream.axes if a.dim == 0 and a.key.endswith("conv2.weight")}
    assert producers == {f"layer1.{i}.conv2.weight" for i in range(3)}
    assert len(stream.probes) == 4  # the stem's ReLU and each block's output ReLU

    convnet = _net("convnet", {"channels": [4, 6], "hidden": 5}, (1, 12, 12))
    spec = permutation_spec(convnet, (1, 12, 12))
    last_conv = spec.group("features.1.conv")
    head_in = [a for a in last_conv.axes if a.key == "head.linear.weight"]
    assert head_in == [Axis("head.linear.weight", 1, 0, 9)]  # 6 channels x 3x3 positions after two pools


class _Concat(nn.Module):
    """Two branches concatenated along channels, then a linear head."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(5, 3), nn.Linear(5, 4)
        self.out = nn.Linear(7, 2)

    def forward(self, x):
        return self.out(torch.cat([torch.relu(self.a(x)), torch.relu(self.b(x))], dim=1))


def test_concatenation_gives_each_branch_its_own_slice():
    model = _Concat()
    spec = permutation_spec(model, (5,))
    assert [(g.name, g.size) for g in spec.groups] == [("a", 3), ("b", 4)]
    assert Axis("out.weight", 1, 3, 1) in spec.group("b").axes
    perms = random_permutations(spec, torch.Generator().manual_seed(0))
    x = torch.randn(6, 5)
    assert torch.allclose(_logits(model, permute_state(dict(model.state_dict()), spec, perms), x),
                          _logits(model, dict(model.state_dict()), x), atol=1e-6)


class _Own(nn.Module):
    """A model with a PReLU (which the tracer refuses) that writes its own spec."""

    def __init__(self, own: bool):
        super().__init__()
        self.fc, self.norm, self.out = nn.Linear(4, 6), nn.PReLU(6), nn.Linear(6, 2)
        if own:
            self.permutation_spec = lambda shape: PermutationSpec([PermutationGroup(
                "hidden", 6, [Axis("fc.weight", 0), Axis("fc.bias", 0), Axis("norm.weight", 0),
                              Axis("out.weight", 1)])])

    def forward(self, x):
        return self.out(torch.relu(self.norm(self.fc(x))))


def test_a_hand_written_spec_overrides_the_trace_and_unknown_layers_are_named():
    with pytest.raises(UnsupportedGraph, match="PReLU.*permutation_spec"):
        permutation_spec(_Own(own=False), (4,))
    spec = permutation_spec(_Own(own=True), (4,))
    assert [g.name for g in spec.groups] == ["hidden"]


def test_ot_is_the_exact_assignment_between_neuron_rows():
    """One hidden layer: OT on [W1[i], b1[i], W2[:, i]] equals an independent Hungarian solve."""
    a, b = _net("mlp", {"width": 30, "depth": 1}, (7,), seed=0), _net("mlp", {"width": 30, "depth": 1}, (7,), seed=1)
    spec = permutation_spec(a, (7,))
    sa, sb = dict(a.state_dict()), dict(b.state_dict())
    perms, _ = match("ot", a, spec, sa, sb)

    def rows(s):
        return torch.cat([s["features.0.linear.weight"], s["features.0.linear.bias"][:, None],
                          s["classifier.weight"].T], 1).double().numpy()
    cost = ((rows(sa)[:, None, :] - rows(sb)[None, :, :]) ** 2).sum(-1)
    _, cols = linear_sum_assignment(cost)
    assert np.array_equal(perms["features.0.linear"].numpy(), cols)


def test_weight_matching_improves_the_objective_it_maximises():
    a, b = _net("mlp", {"width": 40, "depth": 3}, (9,), 0), _net("mlp", {"width": 40, "depth": 3}, (9,), 1)
    spec = permutation_spec(a, (9,))
    sa = {k: v.detach() for k, v in a.named_parameters()}
    sb = {k: v.detach() for k, v in b.named_parameters()}
    perms, info = match("weight", a, spec, sa, sb)

    def inner(s):
        return sum(float((sa[k] * s[k]).sum()) for k in sa)
    assert inner(permute_state(sb, spec, perms)) > inner(sb)
    assert 1 <= info["sweeps"] < 100


def test_matchers_find_more_overlap_than_chance_between_independent_nets():
    """Two independently initialised MLPs trained briefly on the same data share features."""
    from conftest import random_dataset
    data = random_dataset(600, 100, shape=(12,), seed=3)
    nets = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = build_model("mlp", {"width": 32}, (12,), 10)
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        for _ in range(60):
            loss = nn.functional.cross_entropy(net(data.x_train), data.y_train)
            opt.zero_grad()
            loss.backward()
            opt.step()
        nets.append(net.eval())
    spec = permutation_spec(nets[0], (12,))
    sa, sb = dict(nets[0].state_dict()), dict(nets[1].state_dict())
    dist0 = math.dist(torch.cat([v.flatten() for v in sa.values()]).tolist(),
                      torch.cat([v.flatten() for v in sb.values()]).tolist())
    for method in ("weight", "activation", "ot"):
        perms, _ = match(method, nets[0], spec, sa, sb, x=data.x_train)
        aligned = permute_state(sb, spec, perms)
        dist = math.dist(torch.cat([v.flatten() for v in sa.values()]).tolist(),
                         torch.cat([v.flatten() for v in aligned.values()]).tolist())
        assert dist < dist0, method



@pytest.mark.parametrize(("arch", "align"), [("mlp", "weight"), ("convnet", "activation"), ("mlp", "ot")])
def test_aligned_run_records_the_alignment(run_config, shared_store, arch, align):
    from modeconn.app import run
    results = run(run_config("dataset=digits", f"arch={arch}", "method=linear", f"align={align}", store=shared_store))
    section = results["alignment"]
    assert section["method"] == align
    assert section["max_logit_change"] < 1e-4
    assert 0 <= section["fraction_in_place"] < 0.5  # independent nets: almost every unit moves
    assert section["groups"] and section["units"] == sum(g["size"] for g in section["groups"])
    assert section["seconds"] > 0
    # the aligned endpoint computes B's function: t=1 is B's own evaluation
    assert results["path"]["test_err"][-1] == results["endpoints"][1]["test_err"]


# ---------------------------------------------------------------------------------------------
# PAM

def test_birkhoff_projection_is_the_nearest_doubly_stochastic_matrix():
    from scipy.optimize import minimize

    from modeconn.align.pam import project_birkhoff
    x = torch.randn(4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    p, _ = project_birkhoff(x, iters=5000, tol=1e-12)
    assert torch.all(p >= 0)
    assert torch.allclose(p.sum(0), torch.ones(4, dtype=p.dtype), atol=1e-6)
    assert torch.allclose(p.sum(1), torch.ones(4, dtype=p.dtype), atol=1e-6)
    # an independent solve of the same quadratic programme
    target = x.numpy().ravel()
    cons = [{"type": "eq", "fun": lambda v, i=i: v.reshape(4, 4)[i].sum() - 1} for i in range(4)] + \
           [{"type": "eq", "fun": lambda v, i=i: v.reshape(4, 4)[:, i].sum() - 1} for i in range(3)]
    ref = minimize(lambda v: ((v - target) ** 2).sum(), np.full(16, 0.25), jac=lambda v: 2 * (v - target),
                   bounds=[(0, None)] * 16, constraints=cons, method="SLSQP", options={"ftol": 1e-14})
    assert np.allclose(p.numpy().ravel(), ref.x, atol=1e-5)
    ds = torch.full((3, 3), 1 / 3, dtype=torch.float64)
    assert torch.allclose(project_birkhoff(ds)[0], ds)


def _pam_path(seed_b=1):
    from modeconn.align.pam import PamBezierPath
    from modeconn.paths import ParameterSpace
    a, b = _net("mlp", {"width": 16}, (6,), 0), _net("mlp", {"width": 16}, (6,), seed_b)
    space = ParameterSpace(a)
    spec = permutation_spec(a, (6,))
    return a, b, space, PamBezierPath(space, spec, space.flatten(a.state_dict()), space.flatten(b.state_dict()))


def test_pam_path_ends_and_phases():
    model, b, space, path = _pam_path()
    theta0, theta1 = space.flatten(model.state_dict()), space.flatten(b.state_dict())
    assert torch.equal(path.vector(torch.tensor([0.0])), theta0)
    assert torch.allclose(path.vector(torch.tensor([1.0])), theta1)
    # P = I and phi = 0: the quadratic curve through the midpoint is the straight line
    assert torch.allclose(path.vector(torch.tensor([0.3])), 0.7 * theta0 + 0.3 * theta1, atol=1e-6)
    x = torch.randn(5, 6)
    for phase, trains in (("curve", "phi"), ("permutation", "perm")):
        path.set_phase(phase)
        path.zero_grad()
        out = functional_call(model, space.unflatten(path.vector(torch.tensor([0.6]))), (x,))
        (out.pow(2).sum() + path.penalty()).backward()
        assert (path.phi.grad is not None) == (trains == "phi")
        assert all((p.grad is not None) == (trains == "perm") for p in path.perm)


def test_pam_rounding_gives_a_permuted_b_with_b_s_function():
    model, b, space, path = _pam_path()
    path.set_phase("permutation")
    g = torch.Generator().manual_seed(0)
    for p in path.perm:  # a step somewhere inside the polytope, as SGD + projection would leave it
        p.data = p.data + 0.05 * torch.randn(p.shape, generator=g)
    path.project_()
    assert all(torch.allclose(p.sum(1), torch.ones(len(p)), atol=1e-4) and p.min() >= 0 for p in path.perm)
    path.round_()
    path.set_phase("curve")
    assert all(torch.equal(p.sum(0), torch.ones(len(p))) and set(p.unique().tolist()) == {0.0, 1.0}
               for p in path.perm)
    x = torch.randn(7, 6)
    end = space.unflatten(path.vector(torch.tensor([1.0])))
    assert torch.allclose(functional_call(model, end, (x,)), b(x), atol=1e-5)


def test_pam_run_records_its_rounds_and_ends_at_b(run_config, shared_store):
    from modeconn.app import run
    results = run(run_config("dataset=digits", "arch=mlp", "method=bezier", "method.pam.enabled=true",
                             "method.train.epochs=2", "align=weight", store=shared_store))
    pam = results["pam"]
    assert [h["round"] for h in pam["history"]] == [0, 1] and sum(h["curve_epochs"] for h in pam["history"]) == 2
    assert 0 <= pam["fraction_moved"] <= 1
    assert results["path"]["test_err"][0] == results["endpoints"][0]["test_err"]
    assert results["path"]["test_err"][-1] == results["endpoints"][1]["test_err"]
