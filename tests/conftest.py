"""Test-session settings."""
import torch

# The tests solve many tiny problems; one intra-op thread avoids thread spin-up and contention costs that can
# dominate them on a small shared machine. (Runner workers set their own thread counts.)
torch.set_num_threads(1)
