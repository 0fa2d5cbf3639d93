import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """On a shared, loaded 2-core machine two intra-op threads run ~10x slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
