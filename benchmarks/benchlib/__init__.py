"""The pieces of `benchmarks/run.py`: tools, server, data, measuring, cases and the report."""
