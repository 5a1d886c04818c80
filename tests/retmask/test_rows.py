from retmask.rows import RowFile


def test_torn_last_line_is_cut_and_rows_survive(tmp_path):
    rows = RowFile(tmp_path / "s.jsonl")
    rows.append([{"i": 0}, {"i": 1}])
    with open(rows.path, "a") as handle:
        handle.write('{"i": 2')  # a kill mid-write
    assert rows.existing() == [{"i": 0}, {"i": 1}]
    rows.append([{"i": 2}])
    assert [r["i"] for r in rows.existing()] == [0, 1, 2]


def test_a_finished_shard_cut_afterwards_is_refused_and_never_trimmed(tmp_path):
    import pytest

    from retmask.rows import DamagedShard, read_shards

    rows = RowFile(tmp_path / "s.jsonl")
    rows.append([{"i": 0}, {"i": 1}])
    whole = rows.path.read_bytes()
    rows.path.write_bytes(whole[:-5])  # the last row cut after its shard finished
    with pytest.raises(DamagedShard, match="ends in a partial row: it was cut after its shard finished"):
        read_shards([rows.path])
    assert rows.path.read_bytes() == whole[:-5]  # a reader changes nothing


def test_a_writer_that_lost_its_claim_writes_nothing(tmp_path):
    import pytest

    from retmask.claims import ClaimLost

    def lost():
        raise ClaimLost("another attempt holds the shard")

    rows = RowFile(tmp_path / "s.jsonl", guard=lost)
    with pytest.raises(ClaimLost):
        rows.append([{"i": 0}])
    assert not rows.path.exists()
