"""Which listed files a mirror takes: at most `depth` directories down, matching one `--match` (when any
is given) and no `--exclude`, as regular expressions searched in the path relative to the source.

The sums files beside the data (sums.py) are taken whatever `--match` says, as long as they are within
the depth and not excluded: they are read to verify the data, and kept with it.
"""

from __future__ import annotations

from getm_tui.mirror.spec import MirrorSpec, compile_patterns


class Selection:
    def __init__(self, spec: MirrorSpec) -> None:
        self.depth = spec.depth
        self.match = compile_patterns(spec.match, "--match")
        self.exclude = compile_patterns(spec.exclude, "--exclude")

    def within_depth(self, path: str) -> bool:
        return self.depth is None or path.count("/") <= self.depth

    def admits(self, path: str, sums: bool = False) -> bool:
        """Whether the file at relative `path` is mirrored (`sums`: it is a sums file)."""
        if not self.within_depth(path) or any(p.search(path) for p in self.exclude):
            return False
        return sums or not self.match or any(p.search(path) for p in self.match)
