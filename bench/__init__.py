"""Benchmarks of Interlink; see bench/README.md for what each one measures and how to run it."""
