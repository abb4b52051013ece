"""Benchmarks: each figure is measured beside the limit it is compared against, in the same run."""
