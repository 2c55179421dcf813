"""The layering the package promises: no import cycle between any two modules (imports inside functions
count), the engine a library that imports nothing else of ours, and dependencies pointing one way,
front ends -> runner -> queue and engine."""

from __future__ import annotations

import pytest

from tests.tools.imports import cycles, graph

# What each layer must never import, by package prefix.
FORBIDDEN = {
    "getm_tui.engine": (
        "getm_tui.queue",
        "getm_tui.runner",
        "getm_tui.cli",
        "getm_tui.app",
        "getm_tui.config",
    ),
    "getm_tui.queue": ("getm_tui.runner", "getm_tui.cli", "getm_tui.app"),
    "getm_tui.runner": ("getm_tui.cli", "getm_tui.app"),
    "getm_tui.mirror": ("getm_tui.runner", "getm_tui.cli", "getm_tui.app"),
    "getm_tui.app": ("getm_tui.cli",),
    "getm_tui.config": ("getm_tui.queue", "getm_tui.runner", "getm_tui.cli", "getm_tui.app"),
    "getm_tui.humanize": ("getm_tui.",),
}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.slow
def test_no_import_cycles():
    assert cycles(graph()) == []


@pytest.mark.slow
@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_dependencies_point_one_way(layer):
    wrong = [
        f"{importer} imports {target}"
        for importer, targets in graph().items()
        if _within(importer, layer)
        for target in sorted(targets)
        if any(target.startswith(p) or _within(target, p.rstrip(".")) for p in FORBIDDEN[layer])
        and not _within(target, layer)
    ]
    assert wrong == []


@pytest.mark.slow
def test_the_graph_sees_imports_inside_functions():
    """The check above is only as good as the graph: a lazy import must be an edge too."""
    edges = graph()
    assert "getm_tui.cli.run" in edges["getm_tui.cli.main"]  # imported inside _cmd_run
    assert "getm_tui.queue.salvage" in edges["getm_tui.queue.sqlite"]  # imported inside Queue.__init__
    # ...and an import only the type checker reads is not one: frontends names the Supervisor it is given.
    assert "getm_tui.runner.frontends" in edges["getm_tui.runner.supervisor"]
    assert "getm_tui.runner.supervisor" not in edges["getm_tui.runner.frontends"]
