"""Benchmarks and speed measurement (the `bench` extra); never imported by the engine."""
