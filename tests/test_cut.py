"""Random affine cuts (Fort & Jastrzebski 2019 after Li et al. 2018): the projection and the run."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from modeconn.paths import ParameterSpace
from modeconn.paths.cut import RandomCut, sparse_projection


def test_projection_is_very_sparse_with_unit_columns_and_reproducible():
    space = ParameterSpace(nn.ParameterDict({"w": nn.Parameter(torch.zeros(10_000))}))
    dense = RandomCut(space, torch.zeros(10_000), 30, seed=3).dense_projection()
    assert torch.allclose(dense.norm(dim=0), torch.ones(30), atol=1e-5)
    per_column = (dense != 0).sum(0).float()
    assert per_column.min() >= 80 and per_column.max() <= 100            # ~ sqrt(D) = 100 each
    rows, values = sparse_projection(10_000, 30, seed=3)
    again = sparse_projection(10_000, 30, seed=3)
    assert torch.equal(rows, again[0]) and torch.equal(values, again[1])
    assert not torch.equal(rows, sparse_projection(10_000, 30, seed=4)[0])


def test_repeated_entries_count_once_in_the_column_norm():
    """With more non-zeros than rows, rows repeat inside a column: the norm is that of the summed column."""
    space = ParameterSpace(nn.ParameterDict({"w": nn.Parameter(torch.zeros(5))}))
    dense = RandomCut(space, torch.zeros(5), 4, seed=0, density=3.0).dense_projection()
    assert torch.allclose(dense.norm(dim=0), torch.ones(4), atol=1e-5)


def test_cut_is_the_affine_map_anchor_plus_E_z_with_exact_gradients():
    dim = 500
    space = ParameterSpace(nn.ParameterDict({"w": nn.Parameter(torch.zeros(dim))}))
    anchor = torch.randn(dim)
    cut = RandomCut(space, anchor, 7, seed=0, density=0.1)
    assert torch.equal(cut.vector(), anchor)                     # starts at the anchor
    E = cut.dense_projection()
    z = torch.randn(7)
    cut.z.data.copy_(z)
    assert torch.allclose(cut.vector(), anchor + E @ z, atol=1e-5)
    target = torch.randn(dim)
    (cut.vector() * target).sum().backward()
    assert torch.allclose(cut.z.grad, E.T @ target, atol=1e-4)   # dL/dz = E^T dL/dw
    assert cut.trainable and set(cut.state_dict()) == {"z", "anchor"}   # E is rebuilt from the seed
    with pytest.raises(ValueError, match="dimension"):
        RandomCut(space, anchor, 0)


def test_cut_run_trains_inside_the_cut_through_a_scaled_initialisation(run_config):
    from modeconn.app import run
    from modeconn.results import validate
    results = run(run_config("dataset=digits", "method=cut", "method.dim=30", "method.radius_scale=2"))
    assert results["status"] == "ok" and not validate(results)
    cut = results["cut"]
    assert cut["anchor_radius"] == pytest.approx(2 * cut["init_radius"], rel=1e-5)
    assert cut["distance_travelled"] > 0 and results["endpoints"] == []
    # the initialisation is a function of the seed alone: the same run again starts from the same point
    again = run(run_config("dataset=digits", "method=cut", "method.dim=30", "method.radius_scale=2"))
    assert again["cut"]["init_radius"] == cut["init_radius"]
