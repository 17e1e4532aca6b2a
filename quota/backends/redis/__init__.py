"""The Redis engine (``redis://``, ``rediss://``, ``redis+unix://``, ``redis+sentinel://``,
``redis+cluster://`` and the ``valkey`` spellings), imported when a URL names it.

Its modules, from the bottom up:

- ``stored``, ``records``: how states and reservation records are spelt in Redis, pure;
- ``codec``: what is sent and received (scripts, the function library, key names, arguments,
  replies), pure;
- ``connect``: from a storage URL to a redis-py client;
- ``calls``: flows run on a blocking or asyncio client; the one EVALSHA-then-EVAL path, and
  FCALL of the function library with its load and its fallback to the script;
- ``protocol``: every operation as a flow, written once for both engines;
- ``batch``: the asyncio auto-batcher;
- ``engine``: ``RedisBackend`` and ``AsyncRedisBackend``, exported here;
- ``rotate``: the storage half of secret rotation (``quota.rotate``);
- ``lua/``: every script the engine runs: ``arith``, ``algorithms``, ``states`` (stored
  states), ``window`` (the sliding window on its stored bytes), ``core`` (the acquire), then
  ``commands`` (the script) or ``library`` (the function library); ``rotate``.
"""

from __future__ import annotations

from .asyncio_engine import AsyncRedisBackend
from .engine import RedisBackend

__all__ = ["AsyncRedisBackend", "RedisBackend"]
