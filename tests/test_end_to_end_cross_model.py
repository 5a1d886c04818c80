"""Cross-model synthesis end to end (the paper's Appendix D on the toy): `retmask run
configs/tiny-cross-model.yaml`, where the seed-1 toy and its masked twin make the pairs and the
seed-0 toy is trained on them. Every assertion reads what the run wrote."""
import dataclasses
import math
import os

import pytest
from safetensors.torch import load_file

from retmask.config import read_saved_config
from retmask.io import fingerprint, read_json, read_jsonl
from retmask.rows import read_shards
from retmask.rundir import RunDir
from tests.conftest import REPO
from tests.test_end_to_end import retmask

CONFIG = REPO / "configs" / "tiny-cross-model.yaml"
# As conftest's SMALL_RUN (32 prompts, 4 DPO steps, a smaller NIAH evaluation), with fewer
# detection depths: this run detects three times (synthesis model, trained model before and after).
SMALL = ["synthesis.max_prompts=32", "synthesis.max_prompt_tokens=56", "synthesis.sampling.max_new_tokens=8",
         "train.max_steps=4", "train.per_device_batch_size=8", "train.global_batch_size=8",
         "evaluation.random_control_draws=1", "evaluation.niah_lengths=[32,64,2]", "evaluation.niah_depths=3",
         "detection.depths=3"]


@pytest.fixture(scope="module")
def cross_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cross-model")
    result = retmask("run", str(CONFIG), "--run-dir", str(workdir / "run"),
                     *[arg for override in SMALL for arg in ("--set", override)], cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    run = RunDir(workdir / "run")
    cfg = read_saved_config(run.config_path)
    assert cfg.cross_model and cfg.synthesis_model.path != cfg.model.path
    return run, cfg


def test_heads_are_detected_on_and_masked_in_the_synthesis_model(cross_run):
    run, cfg = cross_run
    synthesizer = cfg.synthesis_model.path
    assert read_json(run.stage_dir("select_heads") / "heads.json")["model"] == synthesizer
    assert read_json(run.stage_dir("mask") / "mask.json")["model"] == synthesizer
    masked = run.stage_dir("mask") / "model"
    linked = [path for path in masked.iterdir() if path.is_symlink()]
    assert linked and all(os.path.realpath(path).startswith(synthesizer + os.sep) for path in linked)
    # The retrieval scores the heads were chosen by are not the trained model's own before training.
    detected = read_json(run.stage_dir("merge_scores") / "retrieval_scores.json")
    own = read_json(run.stage_dir("evaluate") / "retrieval_change.json")["per_head"]
    assert any(abs(sum(scores) / len(scores) - own[head]["before"]) > 0.01 for head, scores in detected.items())


def test_both_sides_are_sampled_from_the_synthesis_model_and_its_masked_twin(cross_run):
    run, cfg = cross_run
    sampling = dataclasses.asdict(cfg.synthesis.sampling)
    expected = {"synthesize_chosen": cfg.synthesis_model.path,
                "synthesize_rejected": str(run.stage_dir("mask") / "model")}
    for stage, model in expected.items():
        rows = read_shards(run.shard_files(stage))
        assert rows and {row["fingerprint"] for row in rows} == {fingerprint({"model": model, "sampling": sampling})}


def test_the_target_is_trained_with_itself_as_reference(cross_run):
    run, cfg = cross_run
    trained = load_file(run.stage_dir("train") / "model" / "model.safetensors")
    target = load_file(os.path.join(cfg.model.path, "model.safetensors"))
    synthesizer = load_file(os.path.join(cfg.synthesis_model.path, "model.safetensors"))

    def distance(weights):
        shared = trained.keys() & weights.keys()
        assert shared
        return math.sqrt(sum(float((trained[k] - weights[k]).pow(2).sum()) for k in shared))

    assert distance(target) < 0.1 * distance(synthesizer)
    # At the first step the policy is the reference: zero margin, loss log 2 (DPO from a copy of the target).
    first = read_jsonl(run.stage_dir("train") / "train_log.jsonl")[0]
    assert first["step"] == 1 and abs(first["rewards/margins"]) < 1e-6 and first["loss"] == pytest.approx(math.log(2))


def test_niah_separates_the_synthesis_models_ablation_from_the_trained_model(cross_run):
    run, cfg = cross_run
    checkpoints = {entry["model"]: entry["checkpoint"] for entry in read_json(run.stage_dir("evaluate") / "niah.json")}
    assert checkpoints.pop("base") == cfg.model.path
    assert checkpoints.pop("trained") == str(run.stage_dir("train") / "model")
    assert set(checkpoints) == {"synthesis_base", "ablated", "random_control_0"}
    assert set(checkpoints.values()) == {cfg.synthesis_model.path}
    change = read_json(run.stage_dir("evaluate") / "retrieval_change.json")
    assert change["group"].startswith("trained model's own top")
    masked = read_json(run.stage_dir("select_heads") / "heads.json")["heads"]
    assert sum(head["masked"] for head in change["per_head"].values()) == len(masked)


def test_the_report_says_which_model_did_what(cross_run):
    run, cfg = cross_run
    report = (run.report_dir / "index.md").read_text()
    models = report.split("## Models", 1)[1].split("\n## ", 1)[0]
    assert f"| chosen responses | `{cfg.synthesis_model.path}` |" in models
    assert f"| trained | `{cfg.model.path}`, with itself before training as the DPO reference |" in models
    assert "Cross-model synthesis" in models
    assert "The masked heads are the synthesis model's" in report


def test_the_cards_name_the_synthesis_model_as_the_source_of_both_sides(cross_run):
    from jobs.stages.pairs import pairs_dir
    from jobs.stages.train import trained_model_dir

    run, cfg = cross_run
    dataset_card = (pairs_dir(run) / "dataset" / "README.md").read_text()
    assert f"- Synthesis model (chosen responses): `{cfg.synthesis_model.path}`" in dataset_card
    assert f"the synthesis model `{cfg.synthesis_model.path}` with the masked heads ablated" in dataset_card
    model_card = (trained_model_dir(run) / "README.md").read_text()
    assert f"`{cfg.model.path}` trained with DPO on RetMask pairs: chosen responses sampled from the synthesis " \
           f"model `{cfg.synthesis_model.path}`" in model_card
