"""Auto-batching for the asyncio Redis engine: concurrent script calls become one pipeline.

Calls made during one turn of the event loop are queued and sent together as one pipeline
(``transaction=False``: each call is its own atomic script, the pipeline only saves round trips
and system calls). While a pipeline is in flight the next calls gather into the next one, so a
loop with many requests in flight sends few network writes. A lone call goes out alone.

NOSCRIPT inside a pipeline is answered per call: the calls that got it are sent again with the
script's text (EVAL loads it on that node). On Cluster, redis-py's pipeline refuses its
``evalsha()`` helper, but routes ``execute_command("EVALSHA", ...)`` by key slot like any command:
that is what is used, for both kinds of client.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..errors import BackendError, ConfigError

try:
    from redis.exceptions import NoScriptError, RedisClusterException, RedisError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigError(
        "the Redis engine needs redis-py: install the extra with pip install 'quota[redis]'"
    ) from exc
from .redis_codec import Arg, script, script_sha

Call = tuple[list[str], list[Arg], "asyncio.Future[Any]"]

#: What a failing server raises through redis-py (a Cluster that cannot be reached raises
#: RedisClusterException, which is not a RedisError).
ERRORS = (RedisError, RedisClusterException, OSError)


__all__ = ["ERRORS", "Batcher", "NoScriptError", "backend_error", "evaluate"]


def backend_error(exc: BaseException) -> BackendError:
    """A redis-py failure as the error quota's callers catch."""
    return BackendError(f"redis: {type(exc).__name__}: {exc}")


async def evaluate(client: Any, keys: list[str], args: list[Arg]) -> Any:
    """One script call by SHA, reloading the script on NOSCRIPT; BackendError on failure."""
    try:
        try:
            return await client.execute_command("EVALSHA", script_sha(), len(keys), *keys, *args)
        except NoScriptError:
            return await client.execute_command("EVAL", script(), len(keys), *keys, *args)
    except ERRORS as exc:
        raise backend_error(exc) from exc


class Batcher:
    """Queues script calls and flushes them as pipelines, one per event-loop turn."""

    SPREAD = 4  # batches a turn's calls are split into

    def __init__(self, client: Any, max_batch: int = 256, scripted: bool = False) -> None:
        self.client = client
        self.max_batch = max_batch
        # One server: a batch is ONE script call ("batch" command) instead of a pipeline of
        # calls, which spares redis-py's per-command pipeline work. Cluster: pipelines.
        self.scripted = scripted
        self.queue: list[Call] = []
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

    async def _flush(self, batch: list[Call]) -> None:
        self.calls += len(batch)
        try:
            if len(batch) == 1:
                keys, args, _ = batch[0]
                results = [await evaluate(self.client, keys, args)]
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

    async def _scripted(self, batch: list[Call]) -> list[Any]:
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
        return list(await evaluate(self.client, keys, counts + args))

    async def _pipelined(self, batch: list[Call]) -> list[Any]:
        """A pipeline of script calls (Cluster); NOSCRIPT replies are sent again as EVAL."""
        try:
            results = await self._pipeline(batch, script_sha())
            again = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            if again:
                retried = await self._pipeline([batch[i] for i in again], None)
                for i, r in zip(again, retried, strict=True):
                    results[i] = r
        except ERRORS as exc:
            raise backend_error(exc) from exc
        return results

    async def _pipeline(self, batch: list[Call], sha: str | None) -> list[Any]:
        self.pipelines += 1
        pipe = self.client.pipeline(transaction=False)
        for keys, args, _ in batch:
            if sha is None:
                pipe.execute_command("EVAL", script(), len(keys), *keys, *args)
            else:
                pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))


def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    if future.done():  # the caller was cancelled: nobody waits for this answer
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
