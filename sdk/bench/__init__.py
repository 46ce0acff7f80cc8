"""Benchmarks behind ``sonoedge bench`` and ``benchmarks/``; results go to docs/results/."""
