"""Checks of torch random-generator states, shared by the checkpoint's checks and the native
draws (both must refuse a state whose counters point outside its words)."""
from __future__ import annotations

import torch


def mt19937_counters_valid(state: torch.Tensor) -> bool:
    """Whether a CPU generator state (torch 2.x layout: seed u64, left i32, seeded i32, next
    u64, 624 words as u64) has counters that keep every draw inside its 624 words: a draw
    decrements `left`, re-twists at 0, then reads word `next` and increments it, so a valid
    state has 1 <= left <= 624 and next + left <= 625."""
    if state.dtype != torch.uint8 or state.numel() < 24 + 8 * 624:
        return False
    raw = state[:24].numpy().tobytes()
    left = int.from_bytes(raw[8:12], "little", signed=True)
    nxt = int.from_bytes(raw[16:24], "little", signed=False)
    return 1 <= left <= 624 and nxt + left <= 625
