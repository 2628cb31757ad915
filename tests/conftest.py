import os
import socket

import pytest
import torch

torch.set_num_threads(int(os.environ.get("SCDM_TEST_THREADS", "2")))


def pytest_addoption(parser):
    """--runslow; the markers (slow, e2e) are registered in pyproject.toml."""
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow test: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture()
def one_thread():
    """One torch thread for the test (small inputs: fastest, and no contention with other jobs)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def gen(seed: int = 0) -> torch.Generator:
    """A seeded CPU generator."""
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A tiny random-weight SCDM checkpoint on the embedded world's 12 classes (32 px friendly)."""
    from scdm.checkpoint import save_checkpoint
    from scdm.config import LabelDiffusionConfig, LabelSchedule, ModelCard
    from scdm.presets import TINY_UNET, world_labels
    from scdm.unet import UNet

    torch.manual_seed(0)
    model = UNet(TINY_UNET)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    card = ModelCard(unet=TINY_UNET, labels=world_labels(), name="tiny",
                     label_diffusion=LabelDiffusionConfig(LabelSchedule.CLASSWISE, kappa=tuple(float(k) for k in range(1, 13))))
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", model.state_dict(), card)


@pytest.fixture(scope="module")
def pipes(tmp_path_factory):
    """The demo's tiny random-weight pair (`demo.tiny`): (SCDM, SDM) pipelines on the CPU, loaded per test module."""
    from demo.tiny import make_tiny_checkpoints
    from scdm.pipeline import load_pipeline

    a, b = make_tiny_checkpoints(tmp_path_factory.mktemp("tiny"))
    return load_pipeline(a, device="cpu"), load_pipeline(b, device="cpu")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for the demo server tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
