"""The benchmark suite: `python -m bench [--quick]` (see bench/RESULTS.md)."""
