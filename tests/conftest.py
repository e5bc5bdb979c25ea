"""Test-wide settings: one torch thread (tests run beside other work on 2 cores)."""

import torch

torch.set_num_threads(1)
