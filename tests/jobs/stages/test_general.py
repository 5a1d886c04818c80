"""The general stage (paper Table 5): lm-eval on the base and the trained model, with the task of
local files shipped in configs/lm_eval_tasks, on the toy model."""
import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import yaml

from analysis.run_report import general_section
from jobs.pipeline import build_stages
from jobs.stages import general
from jobs.stages.train import trained_model_dir
from retmask.config import ConfigError, ExperimentConfig, from_dict, load_config
from retmask.errors import UserError
from retmask.rundir import RunDir

REPO = Path(__file__).resolve().parents[3]
TASKS = REPO / "configs" / "lm_eval_tasks"
TASK_FILE = TASKS / "toy_copy" / "toy_copy.yaml"
# configs/tiny.yaml with the shipped toy task; include_path is relative to the config file's folder
GENERAL = ["general.tasks=[toy_copy]", "general.include_path=lm_eval_tasks", "general.batch_size=16"]

# The `results` section of an lm-evaluation-harness output (its format, as a fixture).
RESULTS = {"gpqa_main_zeroshot": {"alias": "gpqa_main_zeroshot", "sample_len": 448, "acc,none": 0.31,
                                  "acc_stderr,none": 0.02, "acc_norm,none": 0.30},
           "minerva_math500": {"alias": "math", "exact_match,none": 0.42, "exact_match_stderr,none": 0.02}}


def test_scores_take_the_configured_metric_else_the_first():
    tasks = ["gpqa_main_zeroshot", "minerva_math500"]
    assert general.task_scores(RESULTS, tasks, {}) == {"gpqa_main_zeroshot": 0.31, "minerva_math500": 0.42}
    assert general.task_scores(RESULTS, tasks, {"gpqa_main_zeroshot": "acc_norm,none"})["gpqa_main_zeroshot"] == 0.30
    with pytest.raises(UserError, match="no metric 'f1'"):
        general.task_scores(RESULTS, tasks, {"minerva_math500": "f1"})
    with pytest.raises(UserError, match="no result named 'mmlu_pro'"):
        general.task_scores(RESULTS, ["mmlu_pro"], {})


def test_unknown_task_names_are_one_error_with_close_names():
    with pytest.raises(UserError, match=r"knows no task 'toy_cpy' \(did you mean toy_copy\?\)"):
        general.check_tasks(["toy_copy", "toy_cpy"], ["toy_copy", "gpqa_main_zeroshot"])


@pytest.mark.skipif(importlib.util.find_spec("lm_eval") is not None, reason="lm-eval is installed here")
def test_tasks_without_lm_eval_installed_is_one_clear_error():
    with pytest.raises(ConfigError, match="lm-evaluation-harness is not installed"):
        from_dict(ExperimentConfig, {"name": "g", "general": {"tasks": ["gpqa_main_zeroshot"]}})


@pytest.mark.parametrize("section, message", [
    ({"include_path": "x"}, "include_path is set but general.tasks is empty"),
    ({"tasks": ["a"], "metrics": {"b": "acc,none"}}, "metrics names b, not in general.tasks"),
    ({"tasks": ["a"], "limit": -1}, "limit must be >= 0"),
    ({"tasks": ["a"], "model_args": {"dtype": "float16"}}, "model_args: dtype the stage sets itself"),
])
def test_general_section_mistakes_are_one_clear_error(section, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(ExperimentConfig, {"name": "g", "general": section})


def test_include_path_is_resolved_to_an_absolute_folder(monkeypatch, toy_model_dir):
    monkeypatch.chdir(REPO)  # `retmask run configs/tiny.yaml`: the config's folder is relative
    assert load_config(Path("configs") / "tiny.yaml", GENERAL).general.include_path == str(TASKS)


def test_include_path_must_be_a_folder_of_task_yamls(tmp_path, toy_model_dir):
    (tmp_path / "empty").mkdir()
    for given, message in ((str(TASK_FILE), "is not a folder of lm-eval task YAML files"),
                           (str(tmp_path / "empty"), "is not a folder of lm-eval task YAML files"),
                           (str(tmp_path / "missing"), "does not exist")):
        with pytest.raises(ConfigError, match=f"general.include_path: .*{message}"):
            load_config(REPO / "configs" / "tiny.yaml", ["general.tasks=[toy_copy]", f"general.include_path={given}"])


def test_no_tasks_no_stage_and_the_report_waits_for_the_stage(toy_model_dir):
    assert "general" not in {s.name for s in build_stages(from_dict(ExperimentConfig, {"name": "g"}))}
    stages = {s.name: s for s in build_stages(load_config(REPO / "configs" / "tiny.yaml", GENERAL))}
    assert stages["general"].depends == ("train",) and stages["general_scores"].depends == ("general",)
    assert "general_scores" in stages["report"].depends


def test_a_task_per_shard_each_read_by_its_headline_metric(toy_model_dir):
    """One array task per benchmark; MATH-500 read by lm-eval's math_verify (its exact_match is the
    first metric lm-eval writes, a string match of the last boxed answer), MMLU-Pro and generative
    GPQA by the answer their filters extract from a reasoning model's generation."""
    cfg = load_config(REPO / "configs" / "tiny.yaml", [
        "general.tasks=[minerva_math500,mmlu_pro,gpqa_main_cot_zeroshot]", "general.metrics={mmlu_pro: 'acc,none'}"])
    assert {s.name: s for s in build_stages(cfg)}["general"].shards(cfg) == 3
    assert general.headline_metrics(cfg) == {"minerva_math500": "math_verify,none", "mmlu_pro": "acc,none",
                                             "gpqa_main_cot_zeroshot": "exact_match,flexible-extract"}
    math = {"minerva_math500": {"alias": "minerva_math500", "exact_match,none": 0.40, "exact_match_stderr,none": 0.02,
                                "math_verify,none": 0.46, "math_verify_stderr,none": 0.02}}
    assert general.task_scores(math, ["minerva_math500"], general.headline_metrics(cfg)) == {"minerva_math500": 0.46}


def _cannot_copy(model_dir: Path, out: Path) -> Path:
    """The toy model with every head of its last layer ablated: its copy circuit is gone."""
    from transformers import AutoConfig

    from retmask.masking import write_masked_checkpoint

    config = AutoConfig.from_pretrained(model_dir)
    last = config.num_hidden_layers - 1
    return write_masked_checkpoint(model_dir, [(last, h) for h in range(config.num_attention_heads)], out)


@pytest.fixture(scope="module")
def general_run(tmp_path_factory, toy_model_dir):
    """The general stage run for real on the toy model (base) and, in the trained model's place, the
    toy model without its copy circuit: a model that can do the task and one that cannot."""
    cfg = load_config(REPO / "configs" / "tiny.yaml", GENERAL)
    cfg.run_dir = str(tmp_path_factory.mktemp("general") / "run")
    run = RunDir(cfg.run_dir)
    _cannot_copy(Path(cfg.model.path), trained_model_dir(run))
    shipped = sorted(TASKS.rglob("*"))
    general.run(cfg, run, 0)
    general.merge(cfg, run, 0)
    assert sorted(TASKS.rglob("*")) == shipped  # lm-eval ran in the task folder and left nothing there
    return cfg, run


def _copy_accuracy(model_dir: Path, dtype: str) -> float:
    """Exact copy on the task's items, computed apart from lm-eval: the toolkit's own greedy
    decoding of the chat prompts, answer compared as written in the data file."""
    from retmask.generation import greedy_generate, load_model

    task = yaml.safe_load(TASK_FILE.read_text())
    items = [json.loads(line) for line in (TASKS / task["dataset_kwargs"]["data_files"]["test"]).read_text().splitlines()]
    model, tokenizer = load_model(model_dir, dtype)
    texts = greedy_generate(model, tokenizer, [[{"role": "user", "content": item["user"]}] for item in items],
                            max_new_tokens=task["generation_kwargs"]["max_gen_toks"], batch_size=16)
    return sum(text.strip() == item["answer"] for text, item in zip(texts, items)) / len(items)


def test_both_models_scored_as_lm_eval_computed_them(general_run):
    cfg, run = general_run
    results = json.loads(general.results_path(run).read_text())
    assert set(results) == {"base", "trained"}
    expected = {model: _copy_accuracy(path, cfg.model.dtype) for model, path in general.model_paths(cfg, run).items()}
    assert results == {model: {"toy_copy": pytest.approx(accuracy)} for model, accuracy in expected.items()}
    assert results["base"]["toy_copy"] > results["trained"]["toy_copy"]  # the skill, then its loss
    for model in ("base", "trained"):
        raw = json.loads(general.raw_results_path(run, model, "toy_copy").read_text())
        items = len((TASKS / "toy_copy" / "toy_copy.jsonl").read_text().splitlines())
        assert raw["n-samples"]["toy_copy"]["effective"] == items  # every item, not a sample of them


def test_the_report_shows_table5_from_results_json(general_run):
    _, run = general_run
    results = json.loads(general.results_path(run).read_text())
    base, trained = results["base"]["toy_copy"], results["trained"]["toy_copy"]
    text = "\n".join(general_section(general.results_path(run)))
    assert "## General abilities (Table 5): base vs trained" in text
    assert "| task | metric | base | trained | change (trained - base) |" in text
    assert f"| toy_copy | first numeric metric | {base:.3f} | {trained:.3f} | {trained - base:+.3f} |" in text


def test_a_rerun_keeps_the_models_already_evaluated(general_run, tmp_path):
    cfg, run = general_run
    again = RunDir(tmp_path / "run")
    for model in general.MODELS:
        general.raw_results_path(again, model, "toy_copy").parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(general.raw_results_path(run, model, "toy_copy"), general.raw_results_path(again, model, "toy_copy"))
    kept = json.loads(general.raw_results_path(again, "base", "toy_copy").read_text())
    kept["results"]["toy_copy"]["exact_match,none"] = 0.123  # no share of the task's items
    general.raw_results_path(again, "base", "toy_copy").write_text(json.dumps(kept))
    general.run(cfg, again, 0)  # `again` has no trained model: evaluating it would fail
    general.merge(cfg, again, 0)
    assert json.loads(general.results_path(again).read_text()) == {
        "base": {"toy_copy": 0.123}, "trained": json.loads(general.results_path(run).read_text())["trained"]}


def test_humaneval_runs_the_models_code_only_when_allowed(tmp_path, toy_model_dir):
    """lm-eval runs an unsafe_code task only when confirmed: without general.allow_code_execution it
    is left out and says why; with it, the model's completions are executed against the tests."""
    from tests.helpers.lm_eval_tasks import write_lm_eval_tasks

    tasks = write_lm_eval_tasks(tmp_path / "tasks")
    given = ["general.tasks=[humaneval_instruct,minerva_math500]", f"general.include_path={tasks}", "general.limit=2"]
    cfg = load_config(REPO / "configs" / "tiny.yaml", given)
    assert cfg.general.runnable_tasks() == ["minerva_math500"]
    assert {s.name: s for s in build_stages(cfg)}["general"].shards(cfg) == 1
    allowed = load_config(REPO / "configs" / "tiny.yaml", [*given, "general.allow_code_execution=true"])
    allowed.run_dir = str(tmp_path / "run")
    run = RunDir(allowed.run_dir)
    _cannot_copy(Path(allowed.model.path), trained_model_dir(run))
    for shard in range(2):
        general.run(allowed, run, shard)
    general.merge(allowed, run, 0)
    metrics = json.loads(general.metrics_path(run).read_text())
    assert metrics == {"humaneval_instruct": "pass@1,create_test", "minerva_math500": "math_verify,none"}
    scores = json.loads(general.results_path(run).read_text())
    assert set(scores["base"]) == {"humaneval_instruct", "minerva_math500"}
    assert scores["base"]["humaneval_instruct"] == 0.0  # executed (lm-eval refuses otherwise): the toy writes no Python
    general.merge(cfg, run, 0)  # the same outputs, code not allowed: left out, and why
    assert json.loads(general.metrics_path(run).read_text())["humaneval_instruct"] == general.NOT_ALLOWED
