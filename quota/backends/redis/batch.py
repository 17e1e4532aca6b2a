"""Auto-batching for the asyncio Redis engine: concurrent script calls become one round trip.

Calls made during one turn of the event loop are queued and sent together: on one server as
ONE call of the script's ``batch`` command, on Cluster as one pipeline (``transaction=False``:
each call is its own atomic script, the pipeline only saves round trips and system calls).
While a batch is in flight the next calls gather into the next one, so a loop with many
requests in flight sends few network writes. A lone call goes out alone, through
``calls.invoke`` (an acquire without a request id is an FCALL of the function library where
the server has one).

In a batch or a pipeline every call is ``calls.evaluate`` (EVALSHA, EVAL on NOSCRIPT; the
script's ``fast`` command is the library's acquire); a pipeline runs its calls' flows
side by side, so the calls that got NOSCRIPT are sent again, by text, in a second pipeline. On
Cluster, redis-py's pipeline refuses its ``evalsha()`` helper, but routes
``execute_command("EVALSHA", ...)`` by key slot like any command: that is what is used, for
both kinds of client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from ...errors import BackendError
from .calls import ERRORS, Functions, advance, backend_error, drive_async, evaluate, invoke
from .codec import ENGINE, Arg, Command

#: A script call waiting in the queue: its keys, its arguments, the future of its reply.
Queued = tuple[list[str], list[Arg], "asyncio.Future[Any]"]


class Batcher:
    """Queues script calls and flushes each event-loop turn's as a few batches: ``batch``
    script calls on one server (``scripted``), pipelines on Cluster."""

    SPREAD = 4  # batches a turn's calls are split into

    def __init__(
        self,
        client: Any,
        execute: Callable[[Command], Awaitable[Any]],
        functions: Functions,
        max_batch: int = 256,
        scripted: bool = False,
    ) -> None:
        self.client = client
        self.execute = execute  # one command, as the engine sends it
        self.functions = functions
        self.max_batch = max_batch
        # One server: a batch is ONE script call ("batch" command) instead of a pipeline of
        # calls, which spares redis-py's per-command pipeline work. Cluster: pipelines.
        self.scripted = scripted
        self.queue: list[Queued] = []
        self.scheduled = False
        self.pipelines = 0  # round trips: pipelines or batch scripts (for tests and benchmarks)
        self.calls = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(self, keys: list[str], args: list[Arg]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self.queue.append((keys, args, future))
        if not self.scheduled:
            self.scheduled = True
            loop.call_soon(self._start)
        return await future

    def _start(self) -> None:
        self.scheduled = False
        # Several smaller batches rather than one: the server runs the first while this
        # process answers its callers and prepares their next calls (one batch would leave
        # one side idle while the other works).
        size = min(self.max_batch, max(1, -(-len(self.queue) // self.SPREAD)))
        while self.queue:
            batch, self.queue = self.queue[:size], self.queue[size:]
            task = asyncio.ensure_future(self._flush(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _flush(self, batch: list[Queued]) -> None:
        self.calls += len(batch)
        try:
            if len(batch) == 1:
                keys, args, _ = batch[0]
                results = [await self._evaluate(keys, args)]
            elif self.scripted:
                results = await self._scripted(batch)
            else:
                results = await self._pipelined(batch)
        except BackendError as exc:
            for *_, future in batch:
                _settle(future, exc)
            return
        for (*_, future), result in zip(batch, results, strict=True):
            _settle(future, backend_error(result) if isinstance(result, BaseException) else result)

    async def _evaluate(self, keys: list[str], args: list[Arg]) -> Any:
        return await drive_async(invoke(self.functions, keys, args), self.execute)

    async def _scripted(self, batch: list[Queued]) -> list[Any]:
        """One script call for the whole batch; one reply (or error) per call."""
        self.pipelines += 1
        keys: list[str] = []
        counts: list[Arg] = ["batch", len(batch)]
        args: list[Arg] = []
        for call_keys, call_args, _ in batch:
            keys.extend(call_keys)
            args.extend(call_args)
            counts.append(len(call_keys))
            counts.append(len(call_args))
        return list(await self._evaluate(keys, counts + args))

    async def _pipelined(self, batch: list[Queued]) -> list[Any]:
        """The calls' flows side by side (Cluster): each round sends every unfinished call's
        next command in one pipeline; a call's own error is its result."""
        flows = [evaluate(ENGINE, keys, args) for keys, args, _ in batch]
        results: list[Any] = [None] * len(flows)
        pending = {i: next(flow) for i, flow in enumerate(flows)}
        while pending:
            sent, pending = pending, {}
            replies = await self._pipeline(list(sent.values()))
            for i, reply in zip(sent, replies, strict=True):
                try:
                    pending[i] = advance(flows[i], reply)
                except StopIteration as stop:
                    results[i] = stop.value
                except ERRORS as exc:  # the call's own error is its result
                    results[i] = exc
        return results

    async def _pipeline(self, commands: list[Command]) -> list[Any]:
        self.pipelines += 1
        pipe = self.client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        try:
            return list(await pipe.execute(raise_on_error=False))
        except ERRORS as exc:
            raise backend_error(exc) from exc


def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    if future.done():  # the caller was cancelled: nobody waits for this answer
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
