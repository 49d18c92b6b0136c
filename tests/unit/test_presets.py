"""`plan_fast`: what `--preset fast` trains for a budget on a machine of given speeds."""

from __future__ import annotations

import pytest

from textcls.errors import ConfigError
from textcls.runs.presets import ACCURATE, FAST_LENGTHS, FAST_MARGIN, PRESETS, plan_fast

POOL, DEV = 50_769, 7_600


def speeds(at_128: float) -> dict[int, float]:
    """Samples/s by max_length for a machine that trains `at_128` samples/s at 128 tokens (shorter is faster)."""
    return {64: at_128 * 1.8, 96: at_128 * 1.3, 128: at_128}


def test_a_slow_machine_trains_on_part_of_the_pool_at_the_shortest_length():
    plan = plan_fast(speeds(12.0), 600, POOL, DEV, predict_samples_per_second_by_length=speeds(60.0))
    assert plan.max_length == 64 and plan.epochs == 1  # rows first: the fastest length, one pass
    assert 2_000 < plan.rows < 10_000
    assert plan.estimated_seconds <= 600 * FAST_MARGIN + 1


def test_a_run_that_takes_its_last_epochs_dev_scores_trains_on_more_rows():
    kwargs = {"predict_samples_per_second_by_length": speeds(40.0)}
    rescored = plan_fast(speeds(12.0), 600, POOL, DEV, **kwargs)
    once = plan_fast(speeds(12.0), 600, POOL, DEV, rescored=False, **kwargs)
    # one dev pass fewer: its seconds go to training rows
    assert once.rows - rescored.rows == pytest.approx(DEV / 72.0 * 21.6, abs=2)
    assert once.estimated_seconds == pytest.approx(rescored.estimated_seconds, abs=1)


def test_a_fast_machine_trains_on_more_rows_than_a_slow_one_in_the_same_budget():
    slow = plan_fast(speeds(12.0), 600, POOL, DEV, predict_samples_per_second_by_length=speeds(60.0))
    fast = plan_fast(speeds(100.0), 600, POOL, DEV, predict_samples_per_second_by_length=speeds(500.0))
    assert fast.rows == POOL and fast.rows > 5 * slow.rows
    assert fast.max_length > slow.max_length  # the whole pool in one pass leaves room for longer texts
    assert fast.estimated_seconds <= 600 * FAST_MARGIN + 1


def test_a_budget_with_room_buys_epochs_then_length():
    # the whole pool fits several times: more epochs first, then the longest length that still allows them
    plan = plan_fast(speeds(1000.0), 600, POOL, DEV, predict_samples_per_second_by_length=speeds(5000.0))
    assert (plan.rows, plan.epochs) == (POOL, 3)
    assert plan.max_length == 128
    roomy_short = plan_fast({64: 300.0, 128: 150.0}, 600, POOL, DEV)
    assert (roomy_short.rows, roomy_short.epochs, roomy_short.max_length) == (POOL, 2, 64)


def test_fixed_epochs_are_kept():
    plan = plan_fast(speeds(100.0), 600, POOL, DEV, epochs=2)
    assert plan.epochs == 2


def test_too_small_a_budget_says_how_long_one_needs():
    with pytest.raises(ConfigError, match=r"time_budget: expected at least [\d.]+ minutes for --preset fast") as error:
        plan_fast(speeds(12.0), 60, POOL, DEV, predict_samples_per_second_by_length=speeds(60.0))
    assert "found 1; pass a longer --time-budget" in str(error.value)


def test_the_recipes_are_data():
    assert set(PRESETS) == {"accurate", "fast"}
    assert [stage.name for stage in ACCURATE] == ["pretrain", "finetune"]
    assert ACCURATE[1].values["layer_lr_decay"] < 1 and ACCURATE[1].values["early_stopping_patience"] == 0
    assert "average_last" not in ACCURATE[1].values  # measured to cost accuracy (docs/presets.md)
    assert FAST_LENGTHS == tuple(sorted(FAST_LENGTHS))
