"""What `get` says of a host that does not resolve: one line and exit 1, at once (`.invalid` resolves
nowhere, RFC 6761)."""

from __future__ import annotations

from tests.helpers.runner_util import cli


def test_get_of_a_host_that_does_not_resolve_says_so_in_one_line(tmp_path):
    out = cli(
        str(tmp_path / "data"), "get", "http://no-such-host.invalid/f.bin?sig=SECRET", "-o", str(tmp_path)
    )
    assert out.returncode == 1
    assert out.stderr == "getm-tui: cannot resolve host no-such-host.invalid\n"
    assert list(tmp_path.iterdir()) == []
