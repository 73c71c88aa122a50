"""Benchmarks: each case prints the project's figure beside a raw baseline from the same run."""
