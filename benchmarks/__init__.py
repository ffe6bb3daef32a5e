"""Throughput benchmarks run by ``python -m launch.benchmark --what=...``; each prints JSON
lines."""
