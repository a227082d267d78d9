"""The Python API over the run's own code: weights in, the protocol's numbers and records out."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import modeconn as mc
from conftest import random_dataset
from modeconn.align import permutation_spec
from modeconn.align.permute import permute_state, random_permutations
from modeconn.evaluation.metrics import evaluate_point
from modeconn.models import build_model
from modeconn.results import validate

SHAPE = (1, 40)


def _nets():
    states = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        net = build_model("mlp", {"width": 16, "batchnorm": True}, SHAPE, 10)
        states.append({k: v.clone() for k, v in net.state_dict().items()})
    return net, states


@pytest.fixture(scope="module")
def data():
    d = random_dataset(n=200, n_test=60, shape=SHAPE)
    return (d.x_train, d.y_train), (d.x_test, d.y_test), d


def test_align_weights_recovers_a_planted_permutation_and_reports_as_a_run():
    net, (a, _) = _nets()
    spec = permutation_spec(net, SHAPE)
    planted = permute_state(a, spec, random_permutations(spec, torch.Generator().manual_seed(3)))
    aligned, report = mc.align_weights(net, a, planted, method="weight", input_shape=SHAPE)
    assert all(torch.allclose(aligned[k].float(), a[k].float(), atol=1e-6) for k in a)
    assert report["method"] == "weight" and report["units"] == 32 and report["max_logit_change"] < 1e-4
    assert {"groups", "per_endpoint", "seconds", "fraction_in_place"} <= report.keys()
    with pytest.raises(ValueError, match="data= or input_shape="):
        mc.align_weights(net, a, planted)


def test_a_linear_profile_is_the_protocol_at_every_point_whatever_the_data_form(data, tmp_path):
    (train, test, d), (net, (a, b)) = data, _nets()
    profile = mc.evaluate(mc.linear(net, a, b, points=5), net, train=train, test=test, wd=1e-3, progress=False)
    space = mc.linear(net, a, b).space
    for t, i in ((0.0, 0), (1.0, 4)):
        point = evaluate_point(net, space.unflatten(space.flatten((a, b)[int(t)])), d, wd=1e-3, batch_size=2048,
                               bn_batch_size=128).as_dict()
        assert {k: v[i] for k, v in profile.path.items() if k != "t"} == pytest.approx(point, abs=1e-6)
    again = mc.evaluate(mc.linear(net, a, b, points=5), net, train=torch.utils.data.TensorDataset(*train),
                        test=torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*test), batch_size=7),
                        wd=1e-3, progress=False)
    for k, values in profile.path.items():
        assert again.path[k] == pytest.approx(values, abs=1e-6), k
    assert again.summary["barrier"] == pytest.approx(profile.summary["barrier"], abs=1e-6)
    # the record is results.json's sections: the schema's checks pass on it
    record = {"dataset": "x", "arch": "x", "method": "linear", "align": "none", "seed": 0, "config": {},
              "status": "ok", "timing": {}, "endpoints": [], **profile.record}
    assert validate(record) == []
    written = json.loads(profile.to_json(tmp_path / "p.json").read_text())
    assert written["summary"]["barrier"] == pytest.approx(profile.summary["barrier"])
    assert profile.plot(tmp_path / "p.png").stat().st_size > 0


def test_train_path_moves_the_bend_and_keeps_the_ends(data, tmp_path):
    (train, test, d), (net, (a, b)) = data, _nets()
    curve = mc.bezier(net, a, b, num_bends=3, points=3)
    before = mc.evaluate(curve, net, train=train, test=test, progress=False).path["train_loss"][1]
    mc.train_path(curve, net, train, epochs=3, lr=0.05, batch_size=50, progress=False, work_dir=tmp_path / "w")
    after = mc.evaluate(curve, net, train=train, test=test, progress=False)
    assert after.path["train_loss"][1] < before
    space = curve.space
    assert torch.equal(curve.vector(torch.tensor([0.0])).detach(), space.flatten(a))
    assert (tmp_path / "w" / "last.ckpt").exists()


def test_a_simplex_is_evaluated_at_any_points(data):
    (train, test, d), (net, (a, b)) = data, _nets()
    simplex = mc.simplex(net, a, b, new_vertices=1)
    assert simplex.trainable
    at = mc.evaluate_at(simplex, net, torch.eye(3)[:1], train=train, test=test, wd=0.0)
    space = simplex.space
    direct = evaluate_point(net, space.unflatten(space.flatten(a)), d, wd=0.0, batch_size=2048, bn_batch_size=128)
    assert at[0] == pytest.approx(direct.as_dict(), abs=1e-6)
    with pytest.raises(ValueError, match="evaluate_at"):
        mc.evaluate(simplex, net, train=train, test=test)


def test_weights_that_do_not_fit_name_the_key_and_shapes(tmp_path):
    net, (a, _) = _nets()
    other = nn.Sequential(nn.Flatten(), nn.Linear(40, 10))
    path = tmp_path / "other.safetensors"
    save_file(other.state_dict(), str(path))
    with pytest.raises(mc.CheckpointError, match=r"other.safetensors: missing key features\.0\.linear\.weight"):
        mc.load_weights(net, path)
    wrong = dict(a, **{"classifier.weight": torch.zeros(3, 16)})
    with pytest.raises(mc.CheckpointError, match=r"b: key classifier.weight has shape \(3, 16\), MLP needs \(10, 16\)"):
        mc.linear(net, a, wrong)
