"""Speed benchmarks (JSON results): targets live here, not in timed tests."""
