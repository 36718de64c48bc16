"""Test-session settings and shared fixtures."""
import pytest
import torch

# The tests solve many tiny problems; one intra-op thread avoids thread spin-up and contention costs that can
# dominate them on a small shared machine. (Runner workers set their own thread counts.)
torch.set_num_threads(1)


@pytest.fixture
def text(tmp_path):
    """A UTF-8 text file of ``lm_tiny.TEXT`` (one document a line), for the tiny models' calibration batches."""
    import lm_tiny

    return lm_tiny.write_text(tmp_path / "docs.txt")
