"""The Path protocol and the straight segment."""
import torch
from torch import nn

from modeconn.models import build_model
from modeconn.paths import LinearPath, ParameterSpace, build_path


def _space_and_points(seed=0):
    model = build_model("mlp", {"width": 16, "depth": 2}, (1, 40), 10)
    space = ParameterSpace(model)
    g = torch.Generator().manual_seed(seed)
    return model, space, torch.randn(space.dim, generator=g), torch.randn(space.dim, generator=g)


def test_flatten_unflatten_roundtrip():
    model, space, _, _ = _space_and_points()
    state = model.state_dict()
    vector = space.flatten(state)
    assert vector.shape == (space.dim,) == (sum(p.numel() for p in model.parameters()),)
    for name, tensor in space.unflatten(vector).items():
        assert torch.equal(tensor, state[name])


def test_linear_is_exactly_the_endpoints_at_0_and_1():
    _, space, a, b = _space_and_points()
    path = LinearPath(space, a, b)
    assert torch.equal(path.vector(torch.tensor([0.0])), a)
    assert torch.equal(path.vector(torch.tensor([1.0])), b)
    assert torch.allclose(path.vector(torch.tensor([0.25])), 0.75 * a + 0.25 * b, atol=1e-6)


def test_linear_coefficients_sum_to_one_and_grid_is_garipovs():
    _, space, a, b = _space_and_points()
    path = build_path({"name": "linear", "points": 61}, space, [a, b])
    grid = path.grid()
    assert grid.shape == (61, 1) and grid[0, 0] == 0 and grid[-1, 0] == 1
    for t in grid:
        assert torch.isclose(path.coefficients(t).sum(), torch.tensor(1.0))
    assert not path.trainable


def test_weights_apply_to_the_network():
    model, space, a, b = _space_and_points()
    path = LinearPath(space, a, b)
    x = torch.randn(4, 1, 40)
    w = path.weights(torch.tensor([0.0]))
    out = torch.func.functional_call(model, w, (x,))
    nn.utils.vector_to_parameters(a, model.parameters())
    assert torch.allclose(out, model(x))
