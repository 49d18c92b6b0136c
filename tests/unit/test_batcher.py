"""The micro-batcher: concurrent requests share model calls, each gets its own rows, overload is refused."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from textcls.serving.batcher import MicroBatcher, Overloaded, ShuttingDown


class RecordingModel:
    """Answers one row per text holding the text's length; records each call's batch size."""

    def __init__(self, delay: float = 0.0, fail_on: str | None = None):
        self.calls: list[int] = []
        self.batches: list[list[str]] = []
        self.delay = delay
        self.fail_on = fail_on
        self.threads: set[str] = set()

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        if self.fail_on in texts:
            raise RuntimeError("model exploded")
        time.sleep(self.delay)
        self.calls.append(len(texts))
        self.batches.append(list(texts))
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


def test_a_request_larger_than_max_batch_is_split_and_cannot_starve_small_ones():
    model = RecordingModel(delay=0.005)
    large = ["L" * n for n in range(1, 96)]  # 95 texts; a row's first value is its text's length, so order shows
    smalls = [["s" * (100 + i)] for i in range(5)]
    finished: list[str] = []

    async def main():
        batcher = MicroBatcher(model, max_batch=8, max_wait=0.0, max_queue=100)
        await batcher.start()

        async def ask(name, texts):
            rows = await batcher.predict(texts)
            finished.append(name)
            return rows

        # Queued in this order before the worker runs: the large request first, the small ones behind it.
        results = await asyncio.gather(
            ask("large", large), *(ask(f"small{i}", texts) for i, texts in enumerate(smalls))
        )
        await batcher.stop()
        return results

    large_rows, *small_rows = run(main())
    assert max(model.calls) <= 8 and sum(model.calls) == 95 + 5
    assert large_rows[:, 0].tolist() == list(range(1, 96))  # every chunk's rows back in input order
    for texts, rows in zip(smalls, small_rows):
        assert rows[:, 0].tolist() == [len(texts[0])]
    # The small requests went in the second model call, not after all twelve chunks of the large one.
    assert {text for texts in smalls for text in texts} <= set(model.batches[1])
    assert finished[-1] == "large"


def test_stop_with_a_timeout_answers_the_oldest_requests_and_refuses_the_rest():
    model = RecordingModel(delay=0.05)

    async def main():
        batcher = MicroBatcher(model, max_batch=2, max_wait=0.0, max_queue=100)
        await batcher.start()
        # One request of five texts, then thirty of one: about 0.3 s of work fits in the timeout, not 1.75 s.
        tasks = [asyncio.create_task(batcher.predict([f"big{i}" for i in range(5)]))]
        tasks += [asyncio.create_task(batcher.predict([f"t{i:02d}"])) for i in range(30)]
        await asyncio.sleep(0)  # let them queue
        started = time.perf_counter()
        await batcher.stop(timeout=0.3)
        elapsed = time.perf_counter() - started
        with pytest.raises(ShuttingDown):
            await batcher.predict(["late"])
        return elapsed, await asyncio.gather(*tasks, return_exceptions=True)

    elapsed, outcomes = run(main())
    assert elapsed < 1.0
    answered = [isinstance(outcome, np.ndarray) for outcome in outcomes]
    assert all(
        isinstance(o, ShuttingDown) and isinstance(o, Overloaded) for o in outcomes if not isinstance(o, np.ndarray)
    )
    assert answered[0] and not answered[-1]  # the five-text request went first, though larger than max_batch
    assert answered == sorted(answered, reverse=True)  # oldest first: the answered ones are a prefix
    assert outcomes[0][:, 0].tolist() == [4.0] * 5


class OverlapModel(RecordingModel):
    """A RecordingModel whose first two calls must run at the same time (else the barrier breaks),
    and whose first call is the slowest, so later calls finish before it."""

    def __init__(self):
        super().__init__()
        self.both_running = threading.Barrier(2, timeout=5)
        self.count = 0
        self.lock = threading.Lock()

    def __call__(self, texts: list[str]) -> np.ndarray:
        with self.lock:
            self.count += 1
            number = self.count
        if number <= 2:
            self.both_running.wait()  # BrokenBarrierError unless two calls overlap
        time.sleep(0.1 if number == 1 else 0.01)
        return super().__call__(texts)


def test_with_max_calls_two_model_calls_overlap_and_a_split_request_still_gets_its_rows_in_order():
    model = OverlapModel()
    large = ["L" * n for n in range(1, 20)]  # 19 texts in chunks of 4, the first chunk back last

    async def main():
        batcher = MicroBatcher(model, max_batch=4, max_wait=0.0, max_queue=100, max_calls=2)
        await batcher.start()
        results = await asyncio.gather(batcher.predict(large), *(batcher.predict([f"s{i}"]) for i in range(6)))
        await batcher.stop()
        return results

    large_rows, *small_rows = run(main())
    assert large_rows[:, 0].tolist() == list(range(1, 20))  # chunks joined by position, not by arrival
    assert [rows[0, 0] for rows in small_rows] == [2.0] * 6
    assert len(model.threads) == 2 and sum(model.calls) == 19 + 6 and max(model.calls) <= 4


def test_stop_waits_for_the_calls_in_flight_and_max_calls_must_be_positive():
    model = RecordingModel(delay=0.05)

    async def main():
        batcher = MicroBatcher(model, max_batch=1, max_wait=0.0, max_queue=100, max_calls=2)
        await batcher.start()
        tasks = [asyncio.create_task(batcher.predict([f"t{i}"])) for i in range(5)]
        await asyncio.sleep(0)  # let them queue
        await batcher.stop()
        return [task.result()[0, 0] for task in tasks]

    assert run(main()) == [2.0] * 5
    with pytest.raises(ValueError, match="max_calls: expected an integer >= 1, found 0"):
        MicroBatcher(model, max_batch=1, max_wait=0.0, max_queue=1, max_calls=0)


def test_explain_calls_run_one_at_a_time_even_when_model_calls_overlap():
    running, most = [0], [0]
    lock = threading.Lock()

    def explain(_text):  # attention maps switch the torch model's attention: two at once would race
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return "done"

    async def main():
        batcher = MicroBatcher(RecordingModel(), max_batch=4, max_wait=0.0, max_queue=100, max_calls=2)
        await batcher.start()
        answers = await asyncio.gather(*(batcher.call(explain, f"t{i}") for i in range(4)), batcher.predict(["x"]))
        await batcher.stop()
        return answers

    *explained, rows = run(main())
    assert explained == ["done"] * 4 and most[0] == 1 and rows[0, 0] == 1.0
