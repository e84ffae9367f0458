"""Benchmarks (issue 9)."""
