"""The HELMET stages on a HELMET checkout built in the test: its eval.py writes score files in
HELMET's own naming and format (a fixture of HELMET's outputs, not a stand-in for our code)."""
import json
import textwrap

import pytest

from jobs.stages import helmet
from jobs.pipeline import build_stages
from retmask.config import ConfigError, ExperimentConfig, from_dict
from retmask.io import read_json
from retmask.rundir import RunDir

FAKE_EVAL = textwrap.dedent('''
    import argparse, json, os, yaml
    parser = argparse.ArgumentParser()
    for name in ("--config", "--model_name_or_path", "--output_dir", "--tag"):
        parser.add_argument(name)
    parser.add_argument("--use_vllm", action="store_true")
    args = parser.parse_args()
    spec = yaml.safe_load(open(args.config))
    os.makedirs(args.output_dir, exist_ok=True)
    for dataset, metric, value in spec["scores"]:
        for length in str(spec["input_max_length"]).split(","):
            name = (f"{dataset}_{args.tag}_test_in{length}_size100_shots2_sampFalsemax20min0t0.0p1.0"
                    f"_chatFalse_42.json.score")
            bonus = 10 if "/train/" in args.model_name_or_path else 0  # the trained model scores higher
            json.dump({metric: value + bonus}, open(os.path.join(args.output_dir, name), "w"))
        print(f"INFO - __main__ - done, results are written to {args.output_dir}/{dataset}.json", flush=True)
''')


@pytest.fixture
def fake_helmet(tmp_path):
    root = tmp_path / "HELMET"
    (root / "configs").mkdir(parents=True)
    (root / "eval.py").write_text(FAKE_EVAL)
    (root / "configs" / "recall_short.yaml").write_text(
        "datasets: json_kv,ruler_niah_mk_2,ruler_niah_mk_3,ruler_niah_mv\ninput_max_length: 8192,16384\nscores:\n"
        "  - [json_kv, substring_exact_match, 90.0]\n  - [ruler_niah_mk_2, ruler_recall, 80.0]\n"
        "  - [ruler_niah_mk_3, ruler_recall, 70.0]\n  - [ruler_niah_mv, ruler_recall, 60.0]\n")
    (root / "configs" / "rerank_short.yaml").write_text(
        "datasets: msmarco_rerank_psg\ninput_max_length: 8192\nscores:\n  - [msmarco_rerank_psg, NDCG@10, 40.0]\n")
    return root


def test_helmet_array_then_averages_with_missing_results_named(fake_helmet, tmp_path):
    cfg = from_dict(ExperimentConfig, {"name": "h", "model": {"path": "/models/base"}, "helmet": {
        "path": str(fake_helmet), "configs": ["recall_short.yaml", "rerank_short.yaml"], "lengths": [8192, 16384]}})
    stages = {s.name: s for s in build_stages(cfg)}
    # the untrained model's HELMET depends on no training (every run of the model shares it)
    assert stages["helmet_base"].shards(cfg) == stages["helmet"].shards(cfg) == 2
    assert stages["helmet_base"].depends == () and stages["helmet"].depends == ("train",)
    assert stages["helmet_scores"].depends == ("helmet_base", "helmet") and "helmet_scores" in stages["report"].depends
    run = RunDir(tmp_path / "run")
    for shard in range(2):
        helmet.run_base(cfg, run, shard)
        helmet.run(cfg, run, shard)
    helmet.merge(cfg, run, 0)
    # each task reported the datasets of its config it got through, as eval.py's log said
    for stage in ("helmet_base", "helmet"):
        assert [(p.done, p.total, p.unit) for _, p in sorted(run.stage_progress(stage).items())] == \
            [(4, 4, "datasets"), (1, 1, "datasets")]
    averages = read_json(run.stage_dir("helmet_scores") / "averages.json")
    base, trained = averages["base"], averages["trained"]
    assert base["8192"]["categories"]["Recall"] == {"value": 75.0, "incomplete": False, "missing": []}
    assert trained["8192"]["categories"]["Recall"]["value"] == 85.0
    assert base["8192"]["categories"]["Re-rank"]["value"] == 40.0
    rerank_16k = base["16384"]["categories"]["Re-rank"]
    assert rerank_16k["value"] is None and rerank_16k["incomplete"]
    assert any("msmarco_rerank_psg at length 16384" in m for m in rerank_16k["missing"])
    assert base["8192"]["overall"]["incomplete"] and base["8192"]["overall"]["value"] is None


def test_failed_helmet_run_names_its_config_and_log(fake_helmet, tmp_path):
    (fake_helmet / "eval.py").write_text("raise SystemExit('no data/ folder')\n")
    cfg = from_dict(ExperimentConfig, {"name": "h", "model": {"path": "/m"}, "helmet": {
        "path": str(fake_helmet), "configs": ["recall_short.yaml"], "lengths": [8192]}})
    with pytest.raises(RuntimeError, match="HELMET eval.py failed on recall_short.yaml for the base model"):
        helmet.run_base(cfg, RunDir(tmp_path / "run"), 0)


def test_lengths_no_config_runs_and_a_config_not_in_the_checkout_are_refused(fake_helmet):
    """HELMET's *_short.yaml files run 8K-64K and the others 128K: averaging 131072 over short files
    alone would leave every 128K average incomplete, so it is refused when the config is read."""
    with pytest.raises(ConfigError, match=r"helmet.lengths \[131072\]: none of helmet.configs runs them "
                                          r"\(recall_short.yaml: 8192, 16384; rerank_short.yaml: 8192\)"):
        from_dict(ExperimentConfig, {"name": "h", "helmet": {
            "path": str(fake_helmet), "configs": ["recall_short.yaml", "rerank_short.yaml"],
            "lengths": [8192, 131072]}})
    with pytest.raises(ConfigError, match="helmet.configs: .*recall.yaml: not a HELMET config with input_max_length"):
        from_dict(ExperimentConfig, {"name": "h", "helmet": {"path": str(fake_helmet), "lengths": [8192]}})


def test_rouge_averages_put_rouge_in_place_of_the_judge(fake_helmet, tmp_path):
    """helmet_scores also writes rouge_averages.json (the tau pilots' proxy): narrativeqa by its
    ROUGE-L F1 from the .score file, where averages.json waits for the GPT-4 judge's file."""
    (fake_helmet / "configs" / "longqa_short.yaml").write_text(
        "datasets: narrativeqa_7892,infbench_qa_eng_7982,infbench_choice_eng_7982\ninput_max_length: 8192\n"
        "scores:\n  - [narrativeqa_7892, rougeL_f1, 30.0]\n  - [infbench_qa_eng_7982, rougeL_f1, 20.0]\n"
        "  - [infbench_choice_eng_7982, exact_match, 70.0]\n")
    cfg = from_dict(ExperimentConfig, {"name": "h", "model": {"path": "/models/base"}, "helmet": {
        "path": str(fake_helmet), "configs": ["longqa_short.yaml"], "lengths": [8192], "models": ["base"]}})
    run = RunDir(tmp_path / "run")
    helmet.run_base(cfg, run, 0)
    helmet.merge(cfg, run, 0)
    judged = read_json(run.stage_dir("helmet_scores") / "averages.json")["base"]["8192"]["categories"]["LongQA"]
    assert judged["value"] is None and "'gpt-4-score' missing" in judged["missing"][0]
    assert "scripts/eval_gpt4_longqa.py writes it" in judged["missing"][0]
    rouge = read_json(run.stage_dir("helmet_scores") / "rouge_averages.json")["base"]["8192"]["categories"]
    assert rouge["LongQA"] == {"value": pytest.approx((30.0 + 20.0 + 70.0) / 3), "incomplete": False, "missing": []}


def test_a_path_without_eval_py_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="is not a HELMET checkout"):
        from_dict(ExperimentConfig, {"name": "h", "helmet": {"path": str(tmp_path)}})


def test_eval_command_passes_vllm_and_extra_args():
    cfg = from_dict(ExperimentConfig, {"name": "h", "helmet": {"use_vllm": True, "extra_args": ["--seed", "7"]}})
    command = helmet.eval_command(cfg, "/m", "rag_short.yaml", tmp := __import__("pathlib").Path("/o"))
    assert command[1:] == ["eval.py", "--config", "configs/rag_short.yaml", "--model_name_or_path", "/m",
                           "--output_dir", str(tmp), "--tag", "retmask", "--use_vllm", "--seed", "7"]
    assert json.dumps(command)
