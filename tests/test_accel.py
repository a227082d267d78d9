"""trainer=gpu's speed options, run on the CPU: bf16 autocast, channels_last, torch.compile."""
import pytest
import torch

from conftest import compose_config, random_dataset
from modeconn.models import build_model
from modeconn.training import accel


def test_trainer_gpu_composes_with_bf16_channels_last_and_large_eval_batches():
    cfg = compose_config("trainer=gpu", "dataset=cifar10", "arch=vgg16")
    assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.channels_last is True
    assert cfg.trainer.compile is False and cfg.eval.batch_size == 8192 and cfg.trainer.threads == "auto"


def test_channels_last_applies_to_conv_nets_and_their_images_only():
    data = random_dataset(n=20, n_test=10, shape=(3, 8, 8))
    model = build_model("convnet", {"channels": [4, 6], "hidden": 8}, (3, 8, 8), 10)
    expected = model(data.x_test).detach()
    accel.prepare(model, data, {"channels_last": True})
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert data.x_train.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(model(data.x_test), expected, atol=1e-5)   # the same function
    flat = random_dataset(n=20, n_test=10, shape=(1, 40))
    mlp = build_model("mlp", {"width": 8}, (1, 40), 10)
    accel.prepare(mlp, flat, {"channels_last": True})
    assert flat.x_train.is_contiguous()                                 # nothing to do for an MLP


@pytest.mark.slow
def test_a_curve_run_with_bf16_channels_last_and_compile_on_cpu(run_config):
    """The whole gpu recipe's options in one smoke run of a BN conv net's Bezier curve on the CPU
    (compile with the aot_eager backend: no C++ toolchain needed)."""
    from modeconn.app import run
    from modeconn.results import validate
    cfg = run_config("dataset=digits", "arch=convnet", "arch.params.channels=[4,4]", "arch.params.hidden=8",
                     "arch.params.batchnorm=true", "method=bezier", "method.points=3", "method.train.epochs=1",
                     "method.train.limit_batches=2", "endpoint.epochs=1", "endpoint.limit_batches=2",
                     "trainer.precision=bf16-mixed", "trainer.channels_last=true", "trainer.compile=aot_eager")
    results = run(cfg)
    assert validate(results) == []
    assert results["status"] == "ok" and len(results["path"]["t"]) == 3
    assert all(torch.isfinite(torch.tensor(results["path"]["test_nll"])))
    assert results["config"]["trainer"]["compile"] == "aot_eager"
