"""The benchmarks (`make bench`): one module per figure, run and reported by ``python -m benchmarks``."""
