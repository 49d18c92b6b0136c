"""Micro-batching: concurrent requests share one model call, so throughput rises with load.

Requests wait in a bounded queue. A worker runs one `predict(texts)` for up to `max_batch` waiting
texts on a model thread; each request gets its own rows back, in order. Calls do not overlap unless
`max_calls` > 1, which suits a model that spreads a call over its own worker threads (the ONNX
backends): the next call then prepares and queues its chunks while the last chunks of the one
before still run, so no core idles at the end of a call. A request larger
than `max_batch` is served a chunk at a time: a request with texts left after a model call goes to
the back of the queue, so one large request cannot hold the model while small ones wait. A request
that finds the model idle waits up to `max_wait` for others to join it; requests that queued while
the model was busy go in the next call at once (they have waited already, and more waiting only
adds latency). A full queue answers `Overloaded` (HTTP 503) at once instead of letting latency
grow without bound. On shutdown (`close(timeout)`) queued requests are served oldest first, and
those that cannot be answered within the timeout get `ShuttingDown` (also 503).

Example:
    >>> batcher = MicroBatcher(classifier.predict_proba, max_batch=64, max_wait=0.005, max_queue=1024)  # doctest: +SKIP
    >>> await batcher.start(); probs = await batcher.predict(["Stocks fell."])                         # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


class Overloaded(Exception):
    """The request queue is full; the client should retry later."""


class ShuttingDown(Overloaded):
    """The server is shutting down; the client should retry (elsewhere, or once it is back)."""


@dataclass
class _Job:
    texts: Sequence[str]
    future: asyncio.Future
    arrived: float  # event-loop time
    given: int = 0  # texts already handed to the model
    rows: dict[int, np.ndarray] = field(default_factory=dict)  # first text's index -> rows, one entry per chunk

    @property
    def left(self) -> int:
        return len(self.texts) - self.given

    @property
    def complete(self) -> bool:
        """Every chunk's rows are back (chunks may come back in any order)."""
        return sum(len(rows) for rows in self.rows.values()) == len(self.texts)


class MicroBatcher:
    """Collects `predict` requests from many coroutines into few model calls, `max_calls` at a time."""

    def __init__(
        self,
        predict: Callable[[list[str]], np.ndarray],
        max_batch: int,
        max_wait: float,
        max_queue: int,
        max_calls: int = 1,
    ):
        if max_calls < 1:
            raise ValueError(f"max_calls: expected an integer >= 1, found {max_calls}")
        self._predict = predict
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.max_queue = max_queue
        self._pending: collections.deque[_Job] = collections.deque()
        # `start` makes these again for the event loop that runs the batcher
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task | None = None
        self._stopping = False
        self._deadline = float("inf")  # event-loop time by which a shutdown must be done
        self._last_call_seconds = 0.0
        self._last_call_ended = float("-inf")
        # With one model thread calls never overlap, so the model's own threads have the cores to themselves.
        self.max_calls = max_calls
        self._model_thread = ThreadPoolExecutor(max_workers=max_calls, thread_name_prefix="textcls-model")
        # `call` (explain) runs one at a time: on the model thread between batches, or beside overlapping
        # calls on a thread of its own (attention maps switch the torch model's attention for the call).
        self._call_thread = (
            self._model_thread
            if max_calls == 1
            else ThreadPoolExecutor(max_workers=1, thread_name_prefix="textcls-call")
        )
        self._free = asyncio.Semaphore(max_calls)  # model threads without a call
        self._in_flight: set[asyncio.Task] = set()
        self.batches = 0
        self.texts = 0

    @property
    def queued(self) -> int:
        return len(self._pending)

    async def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._free = asyncio.Semaphore(self.max_calls)
        self._worker = asyncio.create_task(self._run(), name="textcls-batcher")

    def close(self, timeout: float | None = None) -> None:
        """Refuse new requests from now on; answer the queued ones, except that a model call that
        would end more than `timeout` seconds from now is not started: its requests get `ShuttingDown`."""
        if self._stopping:
            return
        self._stopping = True
        if timeout is not None:
            self._deadline = asyncio.get_running_loop().time() + timeout
        self._wakeup.set()

    async def stop(self, timeout: float | None = None) -> None:
        """`close(timeout)`, then wait for the worker and stop the model thread."""
        self.close(timeout)
        if self._worker is not None:
            await self._worker
        self._model_thread.shutdown(wait=True)
        self._call_thread.shutdown(wait=True)

    async def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities for `texts` (rows in order), computed in a batch with other requests."""
        if self._stopping:
            raise ShuttingDown("the server is shutting down")
        if len(self._pending) >= self.max_queue:
            raise Overloaded(f"{len(self._pending)} requests are already waiting for the model")
        loop = asyncio.get_running_loop()
        job = _Job(texts, loop.create_future(), loop.time())
        self._pending.append(job)
        self._wakeup.set()
        return await job.future

    async def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run `function(*args)` (explain), one such call at a time: between batches with one model
        thread, beside the model calls with several."""
        if self._stopping:
            raise ShuttingDown("the server is shutting down")
        return await asyncio.get_running_loop().run_in_executor(self._call_thread, function, *args)

    def _waiting_texts(self) -> int:
        return sum(job.left for job in self._pending)

    def _take_batch(self) -> list[tuple[_Job, int, int]]:
        """(job, start, stop) chunks of up to `max_batch` texts in all, from the front of the queue."""
        batch, room = [], self.max_batch
        while self._pending and room > 0:
            job = self._pending.popleft()
            if job.future.done():  # the client left, or an earlier chunk failed
                continue
            size = min(job.left, room)
            batch.append((job, job.given, job.given + size))
            job.given += size
            room -= size
            if job.left and self._stopping:  # oldest first now: finish as many requests as the time allows
                self._pending.appendleft(job)
            elif job.left:  # its turn is over: the rest waits behind the requests that queued meanwhile
                self._pending.append(job)
        return batch

    def _refuse_queued(self, reason: str) -> None:
        while self._pending:
            job = self._pending.popleft()
            if not job.future.done():
                job.future.set_exception(ShuttingDown(reason))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._stopping:
                    break
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._free.acquire()  # a model thread is free; requests keep queueing meanwhile
            # A model call cannot be interrupted, so one that would outlast a shutdown's deadline is not started.
            if loop.time() + self._last_call_seconds > self._deadline:
                self._free.release()
                self._refuse_queued("the server is shutting down and could not answer this request in time")
                break
            # Only a request that arrived at an idle model waits for company.
            idle = not self._in_flight and self._pending[0].arrived > self._last_call_ended
            deadline = self._pending[0].arrived + self.max_wait if idle else 0.0
            while not self._stopping and self._waiting_texts() < self.max_batch and loop.time() < deadline:
                await asyncio.sleep(min(0.001, max(0.0, deadline - loop.time())))
            batch = self._take_batch()
            if not batch:
                self._free.release()
                continue
            call = loop.create_task(self._call_model(batch))
            self._in_flight.add(call)
            call.add_done_callback(self._in_flight.discard)
        if self._in_flight:  # stopping: the calls already started answer their requests
            await asyncio.gather(*self._in_flight)

    async def _call_model(self, batch: list[tuple[_Job, int, int]]) -> None:
        """One model call for `batch`; each job gets its rows, and its answer once all its chunks are back."""
        loop = asyncio.get_running_loop()
        texts = [text for job, start, stop in batch for text in job.texts[start:stop]]
        started = loop.time()
        try:
            probs = await loop.run_in_executor(self._model_thread, self._predict, texts)
        except Exception as error:  # every request in the batch learns of it; the worker lives on
            log.exception("model call failed for a batch of %d texts", len(texts))
            for job, _, _ in batch:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        finally:
            self._last_call_ended = loop.time()
            self._last_call_seconds = self._last_call_ended - started
            self._free.release()
        self.batches += 1
        self.texts += len(texts)
        offset = 0
        for job, start, stop in batch:
            job.rows[start] = probs[offset : offset + stop - start]
            offset += stop - start
            if job.complete and not job.future.done():
                job.future.set_result(np.concatenate([job.rows[first] for first in sorted(job.rows)]))
