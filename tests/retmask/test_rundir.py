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
