from retmask.rows import RowFile


def test_torn_last_line_is_cut_and_rows_survive(tmp_path):
    rows = RowFile(tmp_path / "s.jsonl")
    rows.append([{"i": 0}, {"i": 1}])
    with open(rows.path, "a") as handle:
        handle.write('{"i": 2')  # a kill mid-write
    assert rows.existing() == [{"i": 0}, {"i": 1}]
    rows.append([{"i": 2}])
    assert [r["i"] for r in rows.existing()] == [0, 1, 2]
