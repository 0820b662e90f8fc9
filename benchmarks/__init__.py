"""Benchmarks of issue 9 (`make bench`): one module per figure, run and reported by ``python -m benchmarks``."""
