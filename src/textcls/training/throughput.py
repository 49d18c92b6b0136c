"""Steady-state training throughput: samples per second between step ends, without start-up,
the first steps (compilation) or evaluation."""

from __future__ import annotations

import time

import torch

WARMUP_STEPS = 5  # steps left out of the steady-state figure: compilation, allocator growth


class ThroughputMeter:
    """Steady-state training samples/s: the time between consecutive step ends within an epoch, leaving
    out each epoch's first step, the run's first `WARMUP_STEPS` steps and whatever `pause()` brackets
    (evaluation, checkpoints)."""

    def __init__(self, warmup_steps: int = WARMUP_STEPS):
        self.warmup_steps = warmup_steps
        self.steps = 0
        self.seconds = 0.0
        self.samples = 0
        self._last: float | None = None

    def step_end(self, samples: int) -> None:
        now = time.perf_counter()
        self.steps += 1
        if self._last is not None and self.steps > self.warmup_steps:
            self.seconds += now - self._last
            self.samples += samples
        self._last = now

    def pause(self) -> None:
        """Stop the clock until the next step ends (before evaluating or saving). The time since the last
        step end counts: on a GPU that is where the queued steps finish (synchronised here first)."""
        if self._last is not None and self.steps > self.warmup_steps:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.seconds += time.perf_counter() - self._last
        self._last = None

    @property
    def samples_per_second(self) -> float | None:
        return round(self.samples / self.seconds, 2) if self.seconds > 0 and self.samples else None
