"""The codec recipe's phase loss: what it rewards and what it ignores."""

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codec.train_codec import phase_loss  # noqa: E402


def _signals():
    g = torch.Generator().manual_seed(0)
    t = torch.arange(16000) / 16000
    x = torch.sin(2 * torch.pi * 220 * t) + 0.5 * torch.sin(2 * torch.pi * 710 * t + 1.0)
    x = x + 0.05 * torch.randn(16000, generator=g)
    return x[None], g


def test_zero_for_the_reference_at_any_gain():
    x, _ = _signals()
    assert float(phase_loss(x, x)) < 1e-4
    assert float(phase_loss(0.1 * x, x)) < 1e-4


def test_about_one_for_unrelated_noise_and_two_for_inverted():
    x, g = _signals()
    assert 0.8 < float(phase_loss(torch.randn(1, 16000, generator=g), x)) < 1.2
    assert float(phase_loss(-x, x)) > 1.99


def test_sees_a_phase_shift_that_magnitudes_miss():
    x, _ = _signals()
    shifted = torch.roll(x, 8, dims=-1)   # 0.5 ms: the same spectrogram magnitudes, other phases
    assert float(phase_loss(shifted, x)) > 0.1


def test_ignores_energy_above_the_cut_off():
    x, g = _signals()
    t = torch.arange(16000) / 16000
    high = torch.sin(2 * torch.pi * 6000 * t)[None]
    assert float(phase_loss(x + high, x + torch.roll(high, 3, dims=-1), max_hz=4000)) < 0.01


def test_training_takes_the_same_figure_from_the_shared_stft():
    from codec.train_codec import SpectralLosses

    x, g = _signals()
    y = torch.roll(x, 5, dims=-1) + 0.1 * torch.randn(1, 16000, generator=g)
    losses = SpectralLosses(16000)
    shared = losses(y, x, phase_max_hz=3000.0)["phase"]
    assert abs(float(shared) - float(phase_loss(y, x, max_hz=3000.0))) < 1e-6
    assert "phase" not in losses(y, x)
    # without a 512-point STFT of its own, the loss module computes one rather than skipping the term
    other = SpectralLosses(16000, stft_windows=(256,))(y, x, phase_max_hz=3000.0)["phase"]
    assert abs(float(other) - float(shared)) < 1e-6
