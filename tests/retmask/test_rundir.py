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
    taker.adopt("detect", donor)
    assert taker.done_shards("detect", "fp") == {0}
    assert taker.shard_file("detect", 0).stat().st_ino == donor.shard_file("detect", 0).stat().st_ino
    assert not taker.stage_dir("detect").with_name(".detect.adopting").exists()
    write_json(taker.marker("detect", 0), {"fingerprint": "other"})  # outputs are replaced, never edited
    assert donor.done_shards("detect", "fp") == {0}
