"""Names from a listing become paths inside the target directory, or are refused by name."""

from __future__ import annotations

import os

import pytest

from getm_tui.engine.sources.listing import UnsafeName, local_path, relative_to


@pytest.mark.parametrize(
    "name",
    [
        "../escape",
        "a/../../escape",
        "a/..",
        "/etc/passwd",
        "a//b",
        "a/",
        "./a",
        "",
        "a\\..\\b",
        "a\x1b[31mred",
        "dir/file.getm-part",
        "file.GETM-RESUME",
    ],
)
def test_a_hostile_name_is_refused_and_named(tmp_path, name):
    with pytest.raises(UnsafeName) as refused:
        local_path(str(tmp_path), name)
    assert repr(name) in str(refused.value)


@pytest.mark.parametrize(
    "name", ["a", "dir/sub/file.txt", "..hidden", "a..b/c", "ünïcode/ファイル", "a b/c d"]
)
def test_a_safe_name_lands_inside(tmp_path, name):
    path = local_path(str(tmp_path), name)
    assert os.path.commonpath([str(tmp_path), path]) == str(tmp_path) and path != str(tmp_path)
    assert path.endswith(name.split("/")[-1])


def test_keys_are_taken_relative_to_the_listed_prefix():
    assert relative_to("data/2024", "data/2024/x/y.bin") == "x/y.bin"
    assert relative_to("data/2024/", "data/2024/x") == "x"
    assert relative_to("", "top.bin") == "top.bin"
    assert relative_to("p/", "p/../../up") == "../../up"  # not repaired: local_path refuses it
    with pytest.raises(UnsafeName):
        relative_to("data/2024", "data/2025/x")
