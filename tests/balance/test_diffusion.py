"""The diffusion model's own part: its noise schedule (what it shares with the cGAN is tested in
test_generators.py)."""

import torch

from ctnodule.balance.diffusion import alpha_bar


def test_schedule_runs_from_signal_to_noise():
    a = alpha_bar(torch.linspace(0, 1, 11))
    assert a[0] > 0.999 and a[-1] < 1e-6 and (a[1:] < a[:-1]).all()
