"""Benchmarks: each prints its figure as a ratio to a physical limit measured in the same run."""
