from jobs.cli import main


def test_toy_model_refuses_a_non_empty_directory(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["toy-model", str(tmp_path)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_mask_rejects_heads_outside_the_model(toy_model_dir, tmp_path, capsys):
    assert main(["mask", "--model", str(toy_model_dir), "--heads", "L9-H0", "--out", str(tmp_path / "m")]) == 2
    assert "outside the model: layers 0..3" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_mask_writes_a_checkpoint(toy_model_dir, tmp_path):
    assert main(["mask", "--model", str(toy_model_dir), "--heads", "L3-H3,L2-H4", "--out", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "retmask-masked-o_proj.safetensors").is_file()


def test_detect_missing_model_is_one_clear_error(tmp_path, capsys):
    code = main(["detect", "--model", str(tmp_path / "nope"), "--haystack", "h", "--needles", "n", "--out", "o"])
    assert code == 2 and "not a local HF checkpoint directory" in capsys.readouterr().err


def test_unknown_cluster_profile_names_the_known_ones(tmp_path, capsys):
    from tests.conftest import REPO

    code = main(["run", str(REPO / "configs" / "tiny.yaml"), "--run-dir", str(tmp_path / "r"),
                 "--set", "execution.cluster=nowhere"])
    assert code == 2 and "cluster profile 'nowhere' not found; known profiles: abci3-h200, local, local-gridengine, local-gridengine-two-nodes, local-slurm, local-slurm-two-nodes, slurm-4xh100, slurm-8xh200, tsubame4-h100" in capsys.readouterr().err


def detect_arguments(toy_model_dir, out) -> list[str]:
    assets = toy_model_dir / "retmask_toy"
    return ["detect", "--model", str(toy_model_dir), "--haystack", str(assets / "haystack.txt"),
            "--needles", str(assets / "needles.jsonl"), "--template", "{context} {question}",
            "--lengths", "32:48:2", "--depths", "2", "--max-new-tokens", "14", "--dtype", "float32",
            "--shards", "2", "--out", str(out)]


def test_detect_alone_writes_wu_style_scores(toy_model_dir, tmp_path, capsys):
    import json

    from retmask.rundir import RunDir

    run = RunDir(tmp_path / "det")
    code = main(detect_arguments(toy_model_dir, run.root))
    assert code == 0, capsys.readouterr().err
    assert len(run.shard_files("detect")) == 2  # the instances were split over two processes
    scores = json.loads((run.stage_dir("merge_scores") / "retrieval_scores.json").read_text())
    assert len(scores) == 32 and all(len(v) == 32 for v in scores.values())  # 32 heads x 32 kept instances
    ranked = json.loads((run.stage_dir("merge_scores") / "summary.json").read_text())["ranked"]
    assert ranked[0][1] > 0.5 and ranked[-1][1] < 0.05
    printed = capsys.readouterr().out
    assert printed.splitlines()[-1].endswith("retrieval_scores.json") and ranked[0][0] in printed

    assert main(detect_arguments(toy_model_dir, run.root)) == 0  # a rerun finds both stages done
    assert "[detect] up to date, skipped" in capsys.readouterr().out


def test_detect_on_a_cluster_renders_the_detection_array_and_merge(toy_model_dir, tmp_path, capsys):
    out = tmp_path / "det"
    code = main(detect_arguments(toy_model_dir, out) + ["--cluster", "local-slurm", "--dry-run"])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    jobs = [line.split()[3].rstrip(":") for line in printed.splitlines() if line.startswith("# ===== job")]
    assert jobs == ["detect"] and printed.startswith("# job graph: 1 job(s) for 2 stage(s)")  # graph and scripts only
    assert "after its shard, once their inputs are all done: merge_scores" in printed  # merged inside the detect job
    assert "#SBATCH --array=0-1" in printed and not out.exists()  # a dry run writes nothing


def test_bad_detection_inputs_stop_before_any_job(toy_model_dir, tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("")
    arguments = detect_arguments(toy_model_dir, tmp_path / "det")
    arguments[arguments.index("--haystack") + 1] = str(tmp_path / "empty.txt")
    for extra in ([], ["--cluster", "local-slurm", "--dry-run"]):
        assert main(arguments + extra) == 2
        assert "is empty; it must hold the text the needle is hidden in" in capsys.readouterr().err
    long = detect_arguments(toy_model_dir, tmp_path / "det")
    long[long.index("--lengths") + 1] = "4:8:2"
    assert main(long) == 2 and "does not fit a context of 4 tokens" in capsys.readouterr().err
    many = detect_arguments(toy_model_dir, tmp_path / "det") + ["--shards", "1000", "--cluster", "local-slurm",
                                                               "--dry-run"]
    assert main(many) == 2 and "detection.shards: 1000 shards for" in capsys.readouterr().err
    assert not (tmp_path / "det").exists()


def test_a_damaged_manifest_is_one_error_naming_the_file(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text('{"stages": {"detect": {"shards": 2, "do')  # cut mid-write by a full disk
    assert main(["status", str(run), "--disk-only"]) == 2
    error = capsys.readouterr().err
    assert f"{run / 'manifest.json'} is not valid JSON" in error and "Traceback" not in error


def base_model_copy(toy_model_dir, out):
    """The toy model as a base model: no chat template, a tokenizer that adds BOS itself (as
    Llama's does). It was trained on BOS + prompt + " ANSWER", so its copy heads are known."""
    import json
    import shutil

    shutil.copytree(toy_model_dir, out)
    (out / "chat_template.jinja").unlink()
    tokenizer = json.loads((out / "tokenizer.json").read_text())
    tokenizer["post_processor"] = {"type": "TemplateProcessing",
                                   "single": [{"SpecialToken": {"id": "[BOS]", "type_id": 0}},
                                              {"Sequence": {"id": "A", "type_id": 0}}],
                                   "pair": [{"Sequence": {"id": "A", "type_id": 0}}],
                                   "special_tokens": {"[BOS]": {"id": "[BOS]", "ids": [1], "tokens": ["[BOS]"]}}}
    (out / "tokenizer.json").write_text(json.dumps(tokenizer))
    return out


def test_detect_on_a_base_model_feeds_its_bos_and_scores_the_copy_heads_1(toy_model_dir, tmp_path, capsys):
    import json

    from retmask.rundir import RunDir

    base = base_model_copy(toy_model_dir, tmp_path / "base")
    arguments = detect_arguments(base, tmp_path / "det")
    arguments[arguments.index("--template") + 1] = "{context} {question} ANSWER"
    assert main(arguments) == 0, capsys.readouterr().err
    run = RunDir(tmp_path / "det")
    records = [json.loads(line) for path in run.shard_files("detect") for line in path.read_text().splitlines()]
    assert all(r["kept"] for r in records), [r["response"] for r in records if not r["kept"]]
    ranked = json.loads((run.stage_dir("merge_scores") / "summary.json").read_text())["ranked"]
    assert ranked[0][1] == 1.0 and ranked[0][0].startswith("3-"), ranked[:4]


def test_the_printed_follow_up_command_pastes_into_a_shell(tmp_path):
    import shlex

    from jobs.cli import follow_hint

    run = tmp_path / "runs" / "my run (2)"
    command = follow_hint(run).split("follow with: ", 1)[1]
    assert shlex.split(command) == ["retmask", "status", str(run)]


def test_an_empty_prompt_set_or_too_many_shards_stop_before_any_job(tmp_path, capsys):
    from tests.conftest import REPO

    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    config = str(REPO / "configs" / "tiny.yaml")
    for command in (["run", config], ["submit", config, "--cluster", "local-slurm", "--dry-run"]):
        run_dir = tmp_path / command[0]
        assert main(command + ["--run-dir", str(run_dir), "--set", f"synthesis.prompts={empty}"]) == 2
        assert f"synthesis.prompts: {empty} holds no rows" in capsys.readouterr().err
        assert main(command + ["--run-dir", str(run_dir), "--set", "synthesis.shards=200"]) == 2
        assert ("synthesis.shards: 200 shards for at most 128 prompts (512 rows, max_prompts 128); use at most 128 "
                "shards") in capsys.readouterr().err
        assert not run_dir.exists()  # nothing written, nothing queued
        # a train key the installed packages cannot run (liger-kernel is not installed here)
        assert main(command + ["--run-dir", str(run_dir), "--set", "train.use_liger_kernel=true"]) == 2
        assert "train.use_liger_kernel needs liger-kernel >= 0.8.2; it is not installed" in capsys.readouterr().err
        assert not run_dir.exists()


def test_run_and_submit_rehearse_a_single_config_beside_the_real_run(paper_inputs, tmp_path, capsys):
    """`--rehearse` on run and submit: the real config is checked, then its rehearsal runs (here up to
    the retrieval scores) or is printed (a dry run: its training on the profile's 4 GPUs), written to
    <run dir>-rehearsal with what it changed."""
    from retmask.io import read_json
    from tests.conftest import REPO

    config = str(REPO / "configs" / "llama-3.1-8b-instruct.yaml")
    haystack = f"{paper_inputs['wu']}/haystack_for_detect"
    given = ["--set", f"model.path={paper_inputs['llama']}", "--set", f"synthesis.prompts={paper_inputs['lmsys']}",
             "--set", f"detection.haystack={haystack}", "--set", f"detection.needles={haystack}/needles.jsonl",
             "--run-dir", str(tmp_path / "llama")]
    assert main(["run", config, *given, "--rehearse", "--until", "merge_scores"]) == 0
    printed = capsys.readouterr().out
    assert "REHEARSAL: tiny random twins" in printed and f"run directory: {tmp_path / 'llama-rehearsal'}" in printed
    assert not (tmp_path / "llama").exists()
    changed = read_json(tmp_path / "llama-rehearsal/rehearsal.json")["changes"]
    assert changed["model.path"][0] == paper_inputs["llama"] and changed["detection.lengths"] == \
        [[0, 5000, 20], [160, 320, 3]]
    assert read_json(tmp_path / "llama-rehearsal/stages/merge_scores/summary.json")["instances"] == 18  # 3 x 2 x 3
    assert main(["submit", config, *given, "--rehearse", "--cluster", "slurm-4xh100", "--profile-set",
                 "partition=gpu", "--dry-run"]) == 0
    script = capsys.readouterr().out
    assert "global batch 16 = per-device batch 2 x gradient accumulation 2 x 4 GPUs" in script
    assert "llama-rehearsal" in script and "#SBATCH --array=0-1" in script  # two detection and synthesis shards


def test_a_damaged_manifest_or_study_plan_is_one_line_for_every_command(tmp_path, capsys):
    from tests.conftest import REPO

    from retmask.config import load_config, save_config

    run = tmp_path / "run"
    save_config(load_config(REPO / "configs/tiny.yaml"), run / "config.yaml")
    for text in ("null", "[]", '{"stages": []}'):
        (run / "manifest.json").write_text(text)
        for command in (["status", str(run)], ["cancel", str(run)], ["resume", str(run)], ["logs", str(run)],
                        ["submit", str(REPO / "configs/tiny.yaml"), "--cluster", "local-slurm", "--run-dir", str(run)]):
            assert main(command) == 2, (text, command)
            error = capsys.readouterr().err
            assert error.startswith("retmask: error: ") and "is not a run manifest" in error and \
                "Traceback" not in error, (text, command, error)
    study = tmp_path / "study"
    study.mkdir()
    (study / "study.json").write_text('{"runs": {"a": 1}}')
    assert main(["status", str(study)]) == 2
    assert "study.json is not a study plan (expected an object with" in capsys.readouterr().err


def test_a_full_disk_names_the_file_and_says_what_is_safe(tmp_path, capsys):
    import subprocess

    from tests.conftest import REPO

    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], check=True)
    try:
        (disk / "filler").write_bytes(b"\0" * (63 * 1024))  # a nearly full file system
        assert main(["run", str(REPO / "configs/tiny.yaml"), "--run-dir", str(disk / "run")]) == 2
        error = capsys.readouterr().err
        assert f"no space left on the device writing {disk / 'run' / 'config.yaml'}" in error
        assert "what finished is safe" in error and "Traceback" not in error
    finally:
        subprocess.run(["umount", str(disk)], check=True)
