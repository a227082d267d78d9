"""Shared test setup: a private MODECONN_HOME per session, and config composition."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "conf"


@pytest.fixture(scope="session", autouse=True)
def session_home(tmp_path_factory):
    """Generated data (mnist1d) is cached once per session, never in the user's cache."""
    home = tmp_path_factory.mktemp("modeconn_home")
    old = os.environ.get("MODECONN_HOME")
    os.environ["MODECONN_HOME"] = str(home)
    os.environ.setdefault("WANDB_MODE", "disabled")
    yield home
    if old is None:
        os.environ.pop("MODECONN_HOME", None)
    else:
        os.environ["MODECONN_HOME"] = old


def compose_config(*overrides: str):
    """The app's config as `modeconn OVERRIDES...` would compose it (without Hydra's run dir)."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.fixture
def run_config(tmp_path):
    """compose_config with the run dir and the endpoint store inside tmp_path."""
    def make(*overrides: str, store: Path | None = None):
        return compose_config(f"output_dir={tmp_path / 'run'}", f"store_dir={store or tmp_path / 'store'}",
                              "trainer=smoke", "logger=none", *overrides)
    return make


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    """One endpoint store for a test module's runs: its endpoints are trained once."""
    return tmp_path_factory.mktemp("store")


def random_dataset(n: int = 300, n_test: int = 100, shape=(1, 40), seed: int = 0):
    """Random inputs and labels shaped like MNIST-1D: for protocol tests that need no learning."""
    from modeconn.data import Dataset
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return Dataset("toy", x, y, x[:n_test].clone(), y[:n_test].clone(), 10, tuple(shape), None)


def seeded_states(name: str, params: dict, shape, seeds=(0, 1), bias_std: float | None = None):
    """The network ``name`` initialised with each seed (eval mode): the last model and every
    seed's state dict; biases redrawn from N(0, bias_std) when given (so they matter too)."""
    from modeconn.models import build_model
    states = []
    for seed in seeds:
        torch.manual_seed(seed)
        model = build_model(name, params, shape, 10).eval()
        if bias_std is not None:
            with torch.no_grad():
                for key, p in model.named_parameters():
                    if key.endswith("bias"):
                        p.normal_(0, bias_std)
        states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    return model, states
