"""The shape of the package: small modules, each about one thing, none over LIMIT lines."""

from __future__ import annotations

from pathlib import Path

LIMIT = 500
PACKAGE = Path(__file__).resolve().parents[2] / "getm_tui"


def test_no_module_is_over_the_limit() -> None:
    lengths = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert len(lengths) > 50  # the walk found the package
    assert {name: n for name, n in lengths.items() if n > LIMIT} == {}
