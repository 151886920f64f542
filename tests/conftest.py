import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

# A configuration small enough for the whole suite to run in minutes on 2 cores.
# Images keep the backbone frozen (adapt_steps=0): its adaptation would be most of each fit's
# time, and is tested where it is the subject (test_pretrained, test_reproducibility).
TINY = dict(memory_size=8, n_scales=2, width=4, stage1_epochs=2, stage2_epochs=1,
            batch_size=32, input_size=32, adapt_steps=0, random_state=0)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The tests' networks are tiny: one thread is faster, and spares the OpenMP stalls of
    cores shared with other work. The global setting is restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def digits():
    """Digits as (n, 8, 8) float32 images in [0, 1] and their labels."""
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).reshape(-1, 8, 8).astype(np.float32), y


@pytest.fixture
def tiny_params():
    return dict(TINY)
