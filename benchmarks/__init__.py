"""Benchmarks: load tests and throughput measurements against a running server."""
