"""The micro-batcher: concurrent requests share model calls, each gets its own rows, overload is refused."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from textcls.serving.batcher import MicroBatcher, Overloaded


class RecordingModel:
    """Answers one row per text holding the text's length; records each call's batch size."""

    def __init__(self, delay: float = 0.0, fail_on: str | None = None):
        self.calls: list[int] = []
        self.delay = delay
        self.fail_on = fail_on
        self.threads: set[str] = set()

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        if self.fail_on in texts:
            raise RuntimeError("model exploded")
        time.sleep(self.delay)
        self.calls.append(len(texts))
        return np.array([[len(text), 1.0] for text in texts])


def run(coroutine):
    return asyncio.run(coroutine)


def test_concurrent_requests_share_model_calls_and_get_their_own_rows():
    model = RecordingModel(delay=0.01)

    async def main():
        batcher = MicroBatcher(model, max_batch=64, max_wait=0.02, max_queue=100)
        await batcher.start()
        requests = [["x" * (i + 1)] * (1 + i % 3) for i in range(40)]
        results = await asyncio.gather(*(batcher.predict(texts) for texts in requests))
        await batcher.stop()
        return requests, results

    requests, results = run(main())
    for texts, rows in zip(requests, results):
        assert rows.shape == (len(texts), 2)
        assert rows[:, 0].tolist() == [len(t) for t in texts]  # each request got its own rows back
    assert sum(model.calls) == sum(len(t) for t in requests)
    assert len(model.calls) < len(requests) / 4  # 40 requests, a handful of model calls
    assert max(model.calls) <= 64
    assert len(model.threads) == 1  # one model thread: calls never overlap


def test_a_lone_request_waits_at_most_max_wait():
    model = RecordingModel()

    async def main():
        batcher = MicroBatcher(model, max_batch=64, max_wait=0.05, max_queue=10)
        await batcher.start()
        started = time.perf_counter()
        await batcher.predict(["only"])
        elapsed = time.perf_counter() - started
        await batcher.stop()
        return elapsed

    assert run(main()) < 1.0
    assert model.calls == [1]


def test_a_full_queue_refuses_at_once():
    model = RecordingModel(delay=0.2)

    async def main():
        batcher = MicroBatcher(model, max_batch=1, max_wait=0.0, max_queue=2)
        await batcher.start()
        outcomes = await asyncio.gather(*(batcher.predict([str(i)]) for i in range(8)), return_exceptions=True)
        await batcher.stop()
        return outcomes

    outcomes = run(main())
    refused = [o for o in outcomes if isinstance(o, Overloaded)]
    answered = [o for o in outcomes if isinstance(o, np.ndarray)]
    assert refused and answered and len(refused) + len(answered) == 8


def test_a_failing_batch_fails_its_requests_and_the_worker_lives_on():
    model = RecordingModel()

    async def main():
        batcher = MicroBatcher(model, max_batch=8, max_wait=0.0, max_queue=10)
        await batcher.start()
        with pytest.raises(RuntimeError, match="exploded"):
            await batcher.predict(["boom"])
        rows = await batcher.predict(["fine"])
        await batcher.stop()
        return rows

    model.fail_on = "boom"
    assert run(main())[0, 0] == 4


def test_stop_finishes_queued_requests_first():
    model = RecordingModel(delay=0.05)

    async def main():
        batcher = MicroBatcher(model, max_batch=2, max_wait=0.0, max_queue=100)
        await batcher.start()
        pending = [asyncio.create_task(batcher.predict([f"t{i}"])) for i in range(6)]
        await asyncio.sleep(0)  # let them queue
        await batcher.stop()
        with pytest.raises(Overloaded, match="shutting down"):
            await batcher.predict(["late"])
        return [task.result()[0, 0] for task in pending]

    assert run(main()) == [2.0] * 6
