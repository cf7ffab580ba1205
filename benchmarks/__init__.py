"""Benchmarks: each prints its figures and writes JSON to benchmarks/results/."""
