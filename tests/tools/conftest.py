"""The harness's own modules import each other as `benchlib.*` (run.py puts benchmarks/ on the path, as
soak.py does); the tests of the harness import them the same way."""

import sys
from pathlib import Path

BENCHMARKS = str(Path(__file__).resolve().parents[2] / "benchmarks")
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)
