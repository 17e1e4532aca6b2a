"""Benchmarks: ``uv run python -m benchmarks.<name>``."""
