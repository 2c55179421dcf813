"""A saved mirror on a fleet: runners with a data dir each (standing in for hosts), the same mirror in
each one's config and one PostgreSQL queue. One runner lists the tree per interval; the other leaves it,
so no file is queued twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.runner_util import cli, start
from tests.mirror.trees import FILES, files_under, make_tree

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def test_two_runners_with_one_saved_mirror_list_it_once(tree_server, postgres_url: str, tmp_path) -> None:
    remote, url = tree_server
    make_tree(remote)
    dest = tmp_path / "dest"
    config = tmp_path / "config.toml"
    config.write_text(f'[mirror.bank]\nsource = "{url}"\ndestination = "{dest}"\ninterval = "1h"\n')
    env = {"GETM_TUI_CONFIG": str(config), "GETM_TUI_QUEUE": postgres_url}
    runners = [start(str(tmp_path / f"host{i}"), "run", "--once", "-v", env=env) for i in range(2)]
    said = []
    for runner in runners:
        out, err = runner.communicate(timeout=150)
        assert runner.returncode == 0, err
        said.append(out + err)

    listed = [text for text in said if "mirror bank (" in text and "queued" in text]
    left = [text for text in said if "mirror bank: listed by another runner" in text]
    assert (len(listed), len(left)) == (1, 1), said
    assert files_under(dest) == files_under(remote)
    shown = cli(str(tmp_path / "viewer"), "ls", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    queued = [job["name"] for job in json.loads(shown.stdout)]
    assert sorted(queued) == sorted(Path(relative).name for relative in FILES)  # each file once
