"""`retmask plan`: the paper's Llama config on a SLURM profile, its work per job from the config,
and with a pilot run the expected time and GPU-hours from the pilot's own rates; without one it
names the rates it lacks and invents none."""
import re
import statistics

from jobs.cli import main
from jobs.plan import plan
from jobs.profiles import load_profile
from retmask.config import load_config
from tests.conftest import REPO

JOBS = ["detect", "synthesize_chosen", "synthesize_rejected", "train", "evaluate_base", "evaluate"]


def llama_arguments(toy_model_dir):
    """The paper's config with a checkpoint and prompt set that exist here (the plan reads them)."""
    return [str(REPO / "configs" / "llama-3.1-8b-instruct.yaml"), "--cluster", "slurm-4xh100", "--profile-set",
            "partition=gpu", "--set", f"model.path={toy_model_dir}",
            "--set", f"synthesis.prompts={toy_model_dir / 'retmask_toy' / 'prompts.jsonl'}",
            "--set", f"detection.haystack={toy_model_dir / 'retmask_toy' / 'haystack.txt'}",
            "--set", f"detection.needles={toy_model_dir / 'retmask_toy' / 'needles.jsonl'}"]


def rows(printed: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in printed.splitlines() if line.split() and line.split()[0] in JOBS}


def test_without_a_pilot_the_plan_gives_the_work_and_names_the_missing_rates(toy_model_dir, capsys):
    assert main(["plan", *llama_arguments(toy_model_dir)]) == 0
    printed = capsys.readouterr().out
    table = rows(printed)
    assert list(table) == JOBS
    # the paper's detection grid: 20 lengths x 10 depths x the needles given (the toy's 8); 16 tasks of 1 GPU
    assert table["detect"][1:5] == ["1,600", "instances", "16", "1"]
    assert table["train"][1:6] == ["1,024", "pair", "passes", "1", "4"]  # 512 prompts x 2 epochs, 4 GPUs
    assert all(row[-5:-1] == ["?", "?", "?", "?"] for row in table.values())  # rate, per task, wall, GPU-h
    assert "rates missing: detect (instances/s per task), synthesize_chosen (rows/s per task)" in printed
    assert "total: unknown until the rates are measured" in printed


def test_a_pilot_gives_each_job_its_time_and_gpu_hours_from_its_own_rates(small_toy_run, toy_model_dir, capsys):
    assert main(["plan", *llama_arguments(toy_model_dir), "--pilot", str(small_toy_run.run.root)]) == 0
    printed = capsys.readouterr().out
    table = rows(printed)
    assert all(row[-5] != "?" and row[-2] != "?" for row in table.values()), printed  # every rate measured
    assert "the pilot ran locally" in printed and "rates missing" not in printed
    assert re.search(r"total: [\d.,]+ GPU-hours, about \S+ from first job to last", printed)

    cfg = load_config(REPO / "configs" / "llama-3.1-8b-instruct.yaml",
                      [f"model.path={toy_model_dir}", f"synthesis.prompts={toy_model_dir}/retmask_toy/prompts.jsonl",
                       f"detection.haystack={toy_model_dir}/retmask_toy/haystack.txt",
                       f"detection.needles={toy_model_dir}/retmask_toy/needles.jsonl"])
    jobs, _ = plan(cfg, load_profile("slurm-4xh100", ["partition=gpu"]), small_toy_run.run)
    by_stage = {job.stage: job for job in jobs}
    detect = by_stage["detect"]
    # time per task = its share of the work over the pilot's median rate per task
    pilot_rates = [p.rate for p in small_toy_run.run.stage_progress("detect").values()]
    assert detect.task_s == 1600 / 16 / statistics.median(pilot_rates)
    assert by_stage["train"].gpu_hours == by_stage["train"].task_s * 4 / 3600
    pilot_pairs = small_toy_run.run.stage_dir("pairs") / "statistics.json"
    assert "pilot's share of prompts" in by_stage["train"].work.note and pilot_pairs.is_file()


def test_a_task_longer_than_its_limit_is_flagged_with_what_to_change(small_toy_run, toy_model_dir, tmp_path, capsys):
    # a prompt set of the paper's size (its rows are counted, not read): one task synthesizes them all
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "Hello"}\n' * 300_000)
    arguments = llama_arguments(toy_model_dir) + ["--pilot", str(small_toy_run.run.root), "--set", "synthesis.shards=1",
                                                  "--set", f"synthesis.prompts={prompts}", "--set", "synthesis.prompt_format=prompt",
                                                  "--profile-set", "time_limit_min.synthesize_chosen=1"]
    assert main(["plan", *arguments]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"synthesize_chosen .* over the 1m00s limit: set time_limit_min.synthesize_chosen: \d+", printed)
