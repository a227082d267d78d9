"""Endpoint training: the schedules, and a killed run that resumes to the same weights."""
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from modeconn.data import TensorLoader
from modeconn.models import build_model
from modeconn.training.classifier import ClassifierModule
from modeconn.training.fit import fit
from modeconn.training.schedule import garipov_factor, lr_lambda


def test_garipov_schedule_shape():
    assert garipov_factor(0.0) == garipov_factor(0.5) == 1.0
    assert garipov_factor(0.7) == pytest.approx(1.0 - 0.5 * 0.99)
    assert garipov_factor(0.9) == pytest.approx(0.01) and garipov_factor(1.0) == 0.01
    f = lr_lambda("garipov", 100)
    assert [f(s) for s in (0, 50)] == [1.0, 1.0] and f(95) == 0.01
    with pytest.raises(ValueError):
        lr_lambda("cosine?", 10)


def test_cosine_schedule_is_torchs_cosine_annealing_per_step():
    """Benton's per-vertex LR: CosineAnnealingLR(T_max = the budget), here stepped per iteration."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=40)
    ours = lr_lambda("cosine", 40)
    for step in range(41):
        assert ours(step) == pytest.approx(opt.param_groups[0]["lr"], abs=1e-12)
        opt.step()
        reference.step()


class Killed(RuntimeError):
    pass


class KillAtEpoch(Callback):
    """Stands in for a SIGKILL: the run stops after `epoch` epochs were checkpointed."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == self.epoch:
            raise Killed()


def _train(work_dir, callbacks=(), epochs=3):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 1, 40, generator=g), torch.randint(0, 10, (200,), generator=g)
    model = build_model("mlp", {"width": 32, "depth": 2, "dropout": 0.2}, (1, 40), 10)
    loader = TensorLoader(x, y, 32, shuffle=True, seed=3)
    module = ClassifierModule(model, loader, lr=0.05, momentum=0.9, wd=5e-4, total_steps=len(loader) * epochs, seed=3)
    fit(module, epochs=epochs, work_dir=work_dir, trainer_cfg={"progress": False}, callbacks=list(callbacks),
        identity={"test": "resume"}, name="test training")
    return model.state_dict()


def test_a_killed_training_resumes_to_the_uninterrupted_weights(tmp_path):
    uninterrupted = _train(tmp_path / "a")
    with pytest.raises(Killed):
        _train(tmp_path / "b", callbacks=[KillAtEpoch(2)])
    assert (tmp_path / "b" / "last.ckpt").exists()
    resumed = _train(tmp_path / "b")
    for name, tensor in uninterrupted.items():
        assert torch.equal(tensor, resumed[name]), name


def test_the_suites_sgd_is_fused_and_steps_exactly_as_the_per_tensor_loop():
    """training/classifier.sgd uses PyTorch's fused kernel on CPU; 20 momentum + weight-decay
    steps land on the same weights, bit for bit, as torch.optim.SGD's default loop."""
    from modeconn.training.classifier import sgd

    torch.manual_seed(0)
    start = [torch.randn(64, 30), torch.randn(64), torch.randn(5, 64)]
    grads = [[torch.randn_like(w) for w in start] for _ in range(20)]
    ends = []
    for make in (lambda p: sgd(p, lr=0.05, momentum=0.9, weight_decay=5e-4),
                 lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=5e-4)):
        params = [torch.nn.Parameter(w.clone()) for w in start]
        opt = make(params)
        for step in grads:
            for p, g in zip(params, step):
                p.grad = g.clone()
            opt.step()
        ends.append(params)
    assert sgd(ends[0], lr=0.1, momentum=0.9).defaults["fused"]
    assert all(torch.equal(a, b) for a, b in zip(*ends))
