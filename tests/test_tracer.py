"""The tracer's and matchers' edge cases (issue 17): each a planted permutation of a small net with
the pattern -- the logits stay put, both matchers put every unit back -- or a refusal naming the op."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

from modeconn.align import match, permutation_spec
from modeconn.align.groups import Probe, UnsupportedGraph
from modeconn.align.permute import inverse, permute_state, random_permutations
from modeconn.align.weight import objective, weight_matching


def _planted(model, shape, seed=1, methods=("weight", "activation"), x=None):
    """Permute every group at random; check the logits, then that each matcher finds the inverse."""
    model.eval()
    spec = permutation_spec(model, shape)
    state = dict(model.state_dict())
    planted = random_permutations(spec, torch.Generator().manual_seed(seed))
    copy = permute_state(state, spec, planted)
    x = torch.randn(64, *shape, generator=torch.Generator().manual_seed(seed)) if x is None else x
    with torch.no_grad():
        ref = functional_call(model, state, (x,))
        assert (functional_call(model, copy, (x,)) - ref).abs().max() < 1e-4
    for method in methods:
        found, _ = match(method, model, spec, state, copy, x=x, samples=len(x))
        assert all(torch.equal(found[k], inverse(planted)[k]) for k in planted), method
    return spec


class _Tokens(nn.Module):
    """(N, T, F) tokens: Linears on the last dim, a residual MLP, LayerNorm, mean over tokens."""

    def __init__(self):
        super().__init__()
        self.embed, self.up, self.down = nn.Linear(5, 8), nn.Linear(8, 12), nn.Linear(12, 8)
        self.norm, self.head = nn.LayerNorm(8), nn.Linear(8, 3)

    def forward(self, x):
        h = self.embed(x)
        h = h + self.down(torch.nn.functional.gelu(self.up(h)))
        return self.head(self.norm(h).mean(1))


def test_linear_on_tokens_permutes_the_last_dim():
    spec = _planted(_Tokens(), (6, 5))
    assert sorted(g.size for g in spec.groups) == [8, 12]
    stream = next(g for g in spec.groups if g.size == 8)
    assert {a.key for a in stream.axes} >= {"norm.weight", "norm.bias", "head.weight", "embed.weight"}
    assert all(isinstance(p, Probe) and p.dim == 2 for p in stream.probe_list())


class _TokenMix(nn.Module):
    """A Linear over the tokens of (N, C, L) features: it mixes positions, not channels."""

    def __init__(self):
        super().__init__()
        self.conv, self.mix, self.head = nn.Conv1d(2, 4, 3, padding=1), nn.Linear(7, 7), nn.Linear(28, 3)

    def forward(self, x):
        return self.head(torch.flatten(self.mix(torch.relu(self.conv(x))), 1))


class _ChannelMean(nn.Module):
    """x.mean(1) over the channels of (N, C, L): not channel-preserving."""

    def __init__(self):
        super().__init__()
        self.conv, self.head = nn.Conv1d(2, 4, 3, padding=1), nn.Linear(7, 3)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean(1))


def test_what_is_not_understood_is_refused_with_the_op():
    with pytest.raises(UnsupportedGraph, match="mix: a Linear over dim 2 .* channels are at dim 1"):
        permutation_spec(_TokenMix(), (2, 7))
    with pytest.raises(UnsupportedGraph, match=r"mean over dims \[1\]"):
        permutation_spec(_ChannelMean(), (2, 7))


class _Common(nn.Module):
    """torch.mean(x, (2, 3)) and x.reshape(x.shape[0], -1): common spellings the tracer follows."""

    def __init__(self, pool: str):
        super().__init__()
        self.pool = pool
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.fc = nn.Linear(6 if pool == "mean" else 6 * 16, 7)
        self.head = nn.Linear(7, 3)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        h = torch.mean(h, (2, 3)) if self.pool == "mean" else h.reshape(h.shape[0], -1)
        return self.head(torch.relu(self.fc(h)))


@pytest.mark.parametrize("pool", ["mean", "reshape"])
def test_torch_mean_and_reshape_by_shape_are_followed(pool):
    spec = _planted(_Common(pool), (1, 4, 4))
    assert [g.size for g in spec.groups] == [6, 7]


def test_nearly_dead_units_are_matched_exactly():
    """Units that fire on one input only (and identically so), or on none, are ties for the
    correlation; the weights decide, so a permuted copy comes back exactly."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    x = torch.randn(64, 6, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        # units 0-3 fire on x[0] only (scaled copies of each other), units 4-5 never fire
        pre = net[0].weight @ x.T
        for u in range(4):
            net[0].weight[u] = x[0] * (1 + u) / x[0].norm()
            net[0].bias[u] = -(x @ net[0].weight[u]).sort().values[-2] - 1e-3
            net[0].bias[u] += 0  # x[0] gives the largest projection, every other input < 0
        net[0].bias[4:6] = -1e3
        del pre
    acts = torch.relu(net[0](x))
    assert int((acts[:, :4] > 0).sum()) == 4 and int((acts[:, 4:6] > 0).sum()) == 0
    _planted(net, (6,), x=x, methods=("activation",))


def test_weight_matching_keeps_the_best_of_its_restarts():
    from modeconn.models import build_model
    torch.manual_seed(0)
    a = build_model("preresnet164", {"depth": 11, "width": 0.5}, (3, 8, 8), 10)
    torch.manual_seed(1)
    b = build_model("preresnet164", {"depth": 11, "width": 0.5}, (3, 8, 8), 10)
    spec = permutation_spec(a, (3, 8, 8))
    sa = {k: v.detach() for k, v in a.named_parameters()}
    sb = {k: v.detach() for k, v in b.named_parameters()}
    perms, info = weight_matching(spec, sa, sb, restarts=2)
    assert len(info["objectives"]) == 3
    assert info["objective"] == pytest.approx(max(info["objectives"]))
    assert objective(spec, sa, sb, perms) == pytest.approx(info["objective"])
    assert info["objective"] > objective(spec, sa, sb, {})
