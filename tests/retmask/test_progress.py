"""A shard's progress: rate and ETA from its own counts and times, the work found on disk at a
restart left out of the rate, and a reporter that writes at most once a second and at the end."""
from retmask.progress import ProgressReporter, ShardProgress, format_duration, stage_rate
from retmask.rundir import RunDir
from tests.helpers.clock import Clock


def test_rate_and_eta_count_only_this_attempts_work():
    # restarted with 40 of 100 rows on disk; 20 more in 10 s: 2 rows/s, 40 left -> 20 s
    p = ShardProgress("rows", done=60, total=100, started=0.0, updated=10.0, done_at_start=40, tokens=500)
    assert p.rate == 2.0 and p.eta_s == 20.0 and p.token_rate == 50.0
    assert p.line() == "60/100 rows, 2 rows/s, 50 tokens/s, ETA 20s"
    assert ShardProgress("rows", 40, 100, 0.0, 10.0, done_at_start=40).rate is None  # nothing new yet
    assert ShardProgress.from_dict(p.to_dict()) == p


def test_a_stage_adds_the_rates_of_its_running_shards():
    running = [ShardProgress("rows", 10, 50, 0.0, 10.0), ShardProgress("rows", 20, 50, 0.0, 10.0)]
    finished = ShardProgress("rows", 50, 50, 0.0, 25.0)
    total = stage_rate(running + [finished], running)
    assert (total.done, total.total, total.rate) == (80, 150, 3.0) and total.eta_s == 70 / 3


def test_the_reporter_writes_at_most_every_second_and_always_the_end(tmp_path):
    clock, written = Clock(1000.0), []
    reporter = ProgressReporter(written.append, "steps", total=5, clock=clock)
    for _ in range(4):
        clock.now += 0.3
        reporter.advance(note="loss 1.0")
    assert [p.done for p in written] == [0, 4]  # at start, then once 1 s had passed (1.2 s)
    clock.now += 0.1
    reporter.advance()
    assert [p.done for p in written] == [0, 4, 5] and written[-1].finished  # the end is never held back
    run = RunDir(tmp_path)
    run.progress_reporter("detect", 3, "instances", 7, done=2)
    assert run.stage_progress("detect") == {3: run.read_progress("detect", 3)}
    assert run.read_progress("detect", 3).done_at_start == 2


def test_durations_read_as_people_write_them():
    assert [format_duration(s) for s in (42, 125, 7260, 180000)] == ["42s", "2m05s", "2h01m", "2d02h"]
