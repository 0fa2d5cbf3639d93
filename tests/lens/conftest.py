"""One torch thread inside these tests: on a shared, loaded machine two OpenMP threads spin-wait and
run ~40x slower than one (measured: 30 tuned-lens steps on stories260K, 0.7 s vs 30 s)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
