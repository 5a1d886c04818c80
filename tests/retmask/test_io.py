import os

import pytest

from retmask.io import atomic_directory, fingerprint, read_json, write_json


def test_write_json_replaces_atomically_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a" / "b.json"
    write_json(path, {"x": 1})
    write_json(path, {"x": 2})
    assert read_json(path) == {"x": 2}
    assert os.listdir(path.parent) == ["b.json"]


def test_atomic_directory_keeps_old_target_when_block_fails(tmp_path):
    target = tmp_path / "out"
    with atomic_directory(target) as tmp:
        (tmp / "f").write_text("first")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "f").write_text("second")
        raise RuntimeError("boom")
    assert (target / "f").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_fingerprint_ignores_key_order():
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
