"""Benchmarks: ``uv run --group bench python -m benchmarks`` (quota and its peers side by side;
``--quick``, ``--only NAME``), or one part: ``python -m benchmarks.<name>`` for ``accuracy``,
``memory``, ``profile`` and ``middleware``."""
