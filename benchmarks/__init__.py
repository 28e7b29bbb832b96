"""Benchmark scripts of titans-seq (not installed with the package): run them as
``python benchmarks/<script>.py``; the tests import their helpers as ``benchmarks.<module>``."""
