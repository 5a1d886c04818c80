from retmask.rundir import RunDir, shard_slice


def test_shard_slices_cover_everything_once():
    for total in (0, 1, 7, 100):
        for shards in (1, 3, 8):
            covered = [i for k in range(shards) for i in shard_slice(total, shards, k)]
            assert covered == list(range(total))


def test_done_shards_only_count_the_same_fingerprint(tmp_path):
    run = RunDir(tmp_path)
    run.mark_done("detect", 0, "aaa", 1.0)
    run.mark_done("detect", 1, "bbb", 1.0)
    assert run.done_shards("detect", "aaa") == {0}
    assert run.done_shards("detect", "ccc") == set()


def test_supersede_moves_outputs_aside_never_deletes(tmp_path):
    run = RunDir(tmp_path)
    run.mark_done("pairs", 0, "old", 1.0)
    (run.stage_dir("pairs") / "pairs.jsonl").write_text("{}\n")
    moved = run.supersede("pairs")
    assert not run.stage_dir("pairs").exists()
    assert (moved / "pairs.jsonl").read_text() == "{}\n"
    assert "pairs-old-" in moved.name


def test_a_superseded_report_keeps_its_pages_beside_its_markers(tmp_path):
    run = RunDir(tmp_path)
    run.mark_done("report", 0, "old", 1.0)
    run.report_dir.mkdir()
    (run.report_dir / "index.md").write_text("# the old results\n")
    moved = run.supersede("report")
    assert not run.report_dir.exists() and (moved / "report" / "index.md").read_text() == "# the old results\n"
    assert (moved / "done" / "00000.json").is_file()


def test_an_adopted_stage_links_the_donors_files_and_a_rewrite_leaves_the_donor_alone(tmp_path):
    from retmask.io import write_json

    donor, taker = RunDir(tmp_path / "donor"), RunDir(tmp_path / "taker")
    donor.mark_done("detect", 0, "fp", 1.0)
    (donor.stage_dir("detect") / "shards").mkdir()
    (donor.shard_file("detect", 0)).write_text('{"instance_id": 1}\n')
    taker.stage_dir("detect").parent.mkdir(parents=True)
    (taker.stage_dir("detect").with_name(".detect.adopting")).mkdir()  # an adoption cut short earlier
    claims = donor.stage_dir("detect") / "claims"  # the donor's writer, about to release its claim:
    claims.mkdir()                                     # never the taker's (a claim vanishing mid-copy
    (claims / "00000.json").write_text("{}")           # failed an adoption in the paper rehearsal)
    taker.adopt("detect", donor)
    assert not (taker.stage_dir("detect") / "claims").exists()
    assert taker.done_shards("detect", "fp") == {0}
    assert taker.shard_file("detect", 0).stat().st_ino == donor.shard_file("detect", 0).stat().st_ino
    assert not taker.stage_dir("detect").with_name(".detect.adopting").exists()
    write_json(taker.marker("detect", 0), {"fingerprint": "other"})  # outputs are replaced, never edited
    assert donor.done_shards("detect", "fp") == {0}


def test_a_done_marker_records_its_rows_and_a_shard_changed_since_is_not_done(tmp_path):
    import pytest

    from retmask.rows import DamagedShard, RowFile

    run = RunDir(tmp_path)
    for shard in (0, 1):
        RowFile(run.shard_file("synthesize_chosen", shard)).append([{"prompt_id": f"{shard}-{i}"} for i in range(3)])
        run.mark_done("synthesize_chosen", shard, "fp", 1.0)
    record = __import__("json").loads(run.marker("synthesize_chosen", 0).read_text())["output"]
    assert record["rows"] == 3 and record["bytes"] == run.shard_file("synthesize_chosen", 0).stat().st_size
    assert len(run.finished_rows("synthesize_chosen")) == 6
    cut = run.shard_file("synthesize_chosen", 1)
    cut.write_bytes(cut.read_bytes()[:-4])  # cut after it finished
    assert run.done_shards("synthesize_chosen", "fp") == {0}
    assert "holds" in run.damaged_shards("synthesize_chosen", "fp")[1] and "3 rows" in \
        run.damaged_shards("synthesize_chosen", "fp")[1]
    with pytest.raises(DamagedShard, match="00001.jsonl holds .* bytes, its shard finished with"):
        run.finished_rows("synthesize_chosen")
    same_size = run.shard_file("synthesize_chosen", 0)  # the same size, other bytes: seen by a full check
    same_size.write_bytes(same_size.read_bytes().replace(b"0-1", b"0-9"))
    assert 0 not in run.damaged_shards("synthesize_chosen", "fp")
    assert "another checksum" in run.damaged_shards("synthesize_chosen", "fp", deep=True)[0]


def test_a_stage_of_two_configs_is_stale_as_a_whole(tmp_path):
    run = RunDir(tmp_path)
    run.mark_done("synthesize_chosen", 0, "new", 1.0)
    run.mark_done("synthesize_chosen", 1, "old", 1.0)  # a shard of the old config that finished late
    assert run.stale_fingerprints("synthesize_chosen", "new") == {"old"}
    assert run.stale_fingerprints("synthesize_chosen", "old") == {"new"}
    assert "synthesize_chosen-mixed-" in run.supersede("synthesize_chosen").name


def test_a_manifest_of_another_shape_is_one_clear_error(tmp_path):
    import pytest

    from retmask.errors import UserError

    run = RunDir(tmp_path)
    for text in ("null", "[]", '{"stages": []}', '{"stages": {"detect": 3}}'):
        run.manifest_path.write_text(text)
        with pytest.raises(UserError, match=r"manifest.json is not a run manifest \(expected an object with"):
            run.read_manifest()
