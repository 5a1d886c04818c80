"""A training job killed outright (SIGKILL, as a preempted or timed-out SLURM job may be) and
started again resumes from its latest checkpoint: it ends at the configured number of steps, says
where it resumed, and its jsonl log holds every step exactly once, in order."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from jobs.stages.train import train_log_path, trainer_dir
from retmask.config import load_config, save_config
from retmask.io import read_json, read_jsonl
from retmask.rundir import RunDir
from retmask.training import latest_checkpoint
from tests.conftest import REPO, TOY_PAIRS

TOTAL_STEPS = 8
SAVE_STEPS = 2
KILL_AFTER_STEP = 4  # kill once a checkpoint at least this far on exists
OVERRIDES = [*TOY_PAIRS, f"train.max_steps={TOTAL_STEPS}", f"train.save_steps={SAVE_STEPS}",
             "train.logging_steps=1", "train.per_device_batch_size=8", "train.global_batch_size=8"]
TIMEOUT_S = 300


def _environment() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _start_training(run: RunDir, log_file) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "jobs.stages.train_entry", str(run.root)], cwd=REPO, env=_environment(),
                            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)


def _checkpoint_step(run: RunDir) -> int | None:
    """global_step of the newest complete checkpoint (its trainer_state.json is written last)."""
    checkpoint = latest_checkpoint(trainer_dir(run))
    if checkpoint is None:
        return None
    try:
        return json.loads((checkpoint / "trainer_state.json").read_text())["global_step"]
    except (OSError, ValueError):  # caught mid-write: not complete yet
        return None


def _logged_steps(run: RunDir) -> list[int]:
    path = train_log_path(run)
    if not path.is_file():
        return []
    steps = []
    for line in path.read_text().splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except ValueError:  # a line being written
            pass
    return steps


def _wait(condition, process: subprocess.Popen, what: str, output) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert process.poll() is None, f"training exited (rc {process.returncode}) before {what}:\n{_tail(output)}"
        assert time.monotonic() < deadline, f"no {what} after {TIMEOUT_S} s:\n{_tail(output)}"
        time.sleep(0.1)


def _tail(path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def test_training_killed_mid_run_resumes_from_its_checkpoint_with_a_continuous_log(tmp_path, toy_pairs_run):
    cfg = load_config(REPO / "configs" / "tiny.yaml", OVERRIDES)
    run = RunDir(tmp_path / "run")
    shutil.copytree(toy_pairs_run, run.root)
    save_config(cfg, run.config_path)

    first_output = tmp_path / "train-1.log"
    with open(first_output, "w") as output:
        process = _start_training(run, output)
        try:
            _wait(lambda: (_checkpoint_step(run) or 0) >= KILL_AFTER_STEP, process,
                  f"checkpoint at step >= {KILL_AFTER_STEP}", first_output)
            # Let a step past the checkpoint reach the log, so the rerun has a row to drop.
            saved = _checkpoint_step(run)
            _wait(lambda: max(_logged_steps(run), default=0) > saved, process, f"a logged step after {saved}",
                  first_output)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == -signal.SIGKILL, f"training was meant to be killed:\n{_tail(first_output)}"
    resume_step = _checkpoint_step(run)
    assert resume_step is not None and KILL_AFTER_STEP <= resume_step < TOTAL_STEPS
    assert not (run.stage_dir("train") / "summary.json").exists(), "a killed run must not look finished"
    assert max(_logged_steps(run)) > resume_step, "the killed run should have logged past its checkpoint"

    second_output = tmp_path / "train-2.log"
    with open(second_output, "w") as output:
        process = _start_training(run, output)
        try:
            returncode = process.wait(timeout=TIMEOUT_S)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    assert returncode == 0, f"the restarted training failed:\n{_tail(second_output)}"

    summary = read_json(run.stage_dir("train") / "summary.json")
    assert summary["global_step"] == TOTAL_STEPS
    assert summary["resumed_from_step"] == resume_step
    rows = read_jsonl(train_log_path(run))
    assert [row["step"] for row in rows] == list(range(1, TOTAL_STEPS + 1)), "log must hold each step once, in order"
    # The scheduler came back with the optimizer: past warm-up the rate only falls, across the resume too.
    rates = [row["learning_rate"] for row in rows]
    assert rates[1] > 0 and all(later < earlier for earlier, later in zip(rates[1:], rates[2:])), rates
    assert (run.stage_dir("train") / "model" / "config.json").is_file()
    # the model saved, the checkpoints it resumed from are spent: deleted (train.keep_checkpoints keeps them)
    assert latest_checkpoint(trainer_dir(run)) is None and not list(trainer_dir(run).glob("*checkpoint-*"))
