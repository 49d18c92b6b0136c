"""Micro-batching: concurrent requests share one model call, so throughput rises with load.

Requests wait in a bounded queue. A worker runs one `predict(texts)` for up to `max_batch` waiting
texts on a single model thread; each request gets its own rows back. A request that finds the
model idle waits up to `max_wait` for others to join it; requests that queued while the model was
busy go in the next call at once (they have waited already, and more waiting only adds latency). A full queue answers `Overloaded`
(HTTP 503) at once instead of letting latency grow without bound.

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
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger("textcls.serving")


class Overloaded(Exception):
    """The request queue is full; the client should retry later."""


@dataclass
class _Job:
    texts: Sequence[str]
    future: asyncio.Future
    arrived: float  # event-loop time


class MicroBatcher:
    """Collects `predict` requests from many coroutines into few model calls on one thread."""

    def __init__(self, predict: Callable[[list[str]], np.ndarray], max_batch: int, max_wait: float, max_queue: int):
        self._predict = predict
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.max_queue = max_queue
        self._pending: collections.deque[_Job] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._stopping = False
        # One model thread: calls never overlap, so the model's own threads have the cores to themselves.
        self._model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="textcls-model")
        self.batches = 0
        self.texts = 0

    @property
    def queued(self) -> int:
        return len(self._pending)

    async def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._worker = asyncio.create_task(self._run(), name="textcls-batcher")

    async def stop(self) -> None:
        """Finish every queued request, then stop the worker and the model thread."""
        self._stopping = True
        if self._wakeup is not None:
            self._wakeup.set()
        if self._worker is not None:
            await self._worker
        self._model_thread.shutdown(wait=True)

    async def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities for `texts` (rows in order), computed in a batch with other requests."""
        if self._stopping:
            raise Overloaded("the server is shutting down")
        if len(self._pending) >= self.max_queue:
            raise Overloaded(f"{len(self._pending)} requests are already waiting for the model")
        loop = asyncio.get_running_loop()
        job = _Job(texts, loop.create_future(), loop.time())
        self._pending.append(job)
        self._wakeup.set()
        return await job.future

    async def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run `function(*args)` on the model thread, between batches (for explain)."""
        return await asyncio.get_running_loop().run_in_executor(self._model_thread, function, *args)

    def _waiting_texts(self) -> int:
        return sum(len(job.texts) for job in self._pending)

    def _take_batch(self) -> list[_Job]:
        jobs = [self._pending.popleft()]  # always one, even if it alone exceeds max_batch
        count = len(jobs[0].texts)
        while self._pending and count + len(self._pending[0].texts) <= self.max_batch:
            job = self._pending.popleft()
            jobs.append(job)
            count += len(job.texts)
        return jobs

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_call_ended = float("-inf")
        while True:
            if not self._pending:
                if self._stopping:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            # Only a request that arrived at an idle model waits for company.
            deadline = self._pending[0].arrived + self.max_wait if self._pending[0].arrived > last_call_ended else 0.0
            while not self._stopping and self._waiting_texts() < self.max_batch and loop.time() < deadline:
                await asyncio.sleep(min(0.001, max(0.0, deadline - loop.time())))
            jobs = [job for job in self._take_batch() if not job.future.done()]  # done: the client left
            if not jobs:
                continue
            texts = [text for job in jobs for text in job.texts]
            try:
                probs = await loop.run_in_executor(self._model_thread, self._predict, texts)
            except Exception as error:  # every waiting request learns of it; the worker lives on
                log.exception("model call failed for a batch of %d texts", len(texts))
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(error)
                continue
            finally:
                last_call_ended = loop.time()
            self.batches += 1
            self.texts += len(texts)
            offset = 0
            for job in jobs:
                rows = probs[offset : offset + len(job.texts)]
                offset += len(job.texts)
                if not job.future.done():
                    job.future.set_result(rows)
