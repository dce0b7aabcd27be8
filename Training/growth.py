"""Growing a trained model into a deeper one of the same widths without changing what it computes."""

from __future__ import annotations

from typing import Callable

import torch.nn as nn
import torch


def load_grown(model: nn.Module, donor: nn.Module, is_residual_output: Callable[[str], bool]) -> list[str]:
    """Copies every donor tensor into `model` (same names and shapes) and zeroes the fresh tensors that
    `is_residual_output` names, so each block the donor lacks adds nothing to its residual stream.

    Zero output projections rather than small random ones: the grown model then scores exactly what the donor
    scored at step 0, so any later change in validation is the new blocks' doing. Gradients still reach them (the
    output projection's gradient is its input times the upstream gradient, which is not zero).
    Returns the names of the tensors the donor did not provide.
    """
    state = model.state_dict()
    donated = donor.state_dict()
    for name, value in donated.items():
        if name not in state or state[name].shape != value.shape:
            raise ValueError(f"the donor's {name} has no counterpart of the same shape in the grown model")
        state[name] = value.clone()
    fresh = sorted(set(state) - set(donated))
    for name in fresh:
        if is_residual_output(name):
            state[name] = torch.zeros_like(state[name])
    model.load_state_dict(state, strict=True)
    return fresh
