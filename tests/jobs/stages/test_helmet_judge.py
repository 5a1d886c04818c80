"""HELMET's GPT-4 judge of LongQA and Summ: HELMET's own judge scripts and endpoint model class
(tests/helpers/helmet_upstream, unmodified) against a local OpenAI-compatible server, on the
outputs of the HELMET checkout of the tests; averages checked against a computation by hand from
the judge's answers and HELMET's formulas (gpt-4-score: mean of fluency x correctness, 0-3, x 100/3;
gpt-4-f1: mean of fluency x F1 of key-point recall and sentence precision, x 100)."""
import json

from analysis.runs import judge_note
from jobs.pipeline import build_stages
from jobs.stages import helmet, helmet_judge
from retmask.config import ExperimentConfig, from_dict
from retmask.helmet import DATASETS
from retmask.io import read_json
from retmask.rundir import RunDir
from tests.helpers.helmet_checkout import keypoints, write_helmet_checkout
from tests.helpers.openai_server import OpenAIServer


def _output(run: RunDir, dataset: str, length: int) -> dict:
    pattern = f"{DATASETS[dataset].in_file.replace('<N>', '*')}_retmask_*_in{length}_*.json"
    (path,) = helmet.output_dir(run, "base").glob(pattern)
    return json.loads(path.read_text())


def _score(run: RunDir, dataset: str, length: int, metric: str) -> float:
    pattern = f"{DATASETS[dataset].in_file.replace('<N>', '*')}_retmask_*_in{length}_*.json.score"
    (path,) = helmet.output_dir(run, "base").glob(pattern)
    return json.loads(path.read_text())[metric]


def test_longqa_and_summ_judged_through_an_endpoint_complete_their_averages(tmp_path, toy_model_dir):
    checkout = write_helmet_checkout(tmp_path / "HELMET")
    with OpenAIServer() as server:
        cfg = from_dict(ExperimentConfig, {
            "name": "j", "model": {"path": str(toy_model_dir)},
            "helmet": {"path": str(checkout), "configs": ["longqa_short.yaml", "summ_short.yaml"], "lengths": [8192],
                       "models": ["base"]},
            "helmet_judge": {"endpoint": server.url, "model": str(toy_model_dir)}})
        stages = {s.name: s for s in build_stages(cfg)}
        assert stages["helmet_base_judge"].depends == ("helmet_base",) and stages["helmet_base_judge"].shards(cfg) == 2
        assert stages["helmet_scores"].depends == ("helmet_base", "helmet_base_judge")
        run = RunDir(tmp_path / "run")
        for shard in range(2):
            helmet.run_base(cfg, run, shard)
        before = read_json_averages(cfg, run)
        assert before["LongQA"]["incomplete"] and before["Summ"]["incomplete"]  # no judge yet
        for shard in range(2):
            helmet_judge.run_base(cfg, run, shard)
        asked = len(server.requests)
        helmet_judge.run_base(cfg, run, 0)  # a rerun keeps what was judged
        assert len(server.requests) == asked

    # every request went to the configured judge with the scripts' settings
    assert {r["model"] for r in server.requests} == {str(toy_model_dir)}
    assert {r["temperature"] for r in server.requests} == {0.1}
    longqa = [r for r in server.requests if "Correct answers:" in r["prompt"]]
    assert {r["max_tokens"] for r in longqa} == {2048}
    assert {r["max_tokens"] for r in server.requests if r not in longqa} == {4096}
    assert len(longqa) == 4 * 3 and len(server.requests) - len(longqa) == 4 * 2 * 3 * 3  # lengths, files, items, calls

    # by hand, from the outputs eval.py wrote and the server's rubric
    items = _output(run, "narrativeqa", 8192)["data"]
    narrativeqa = sum(1 * (3 if item["output"].split("Answer:")[1].strip() in item["answer"] else 1)
                      for item in items) / len(items) * 100 / 3
    longqa_by_hand = (narrativeqa + _score(run, "infbench_qa", 8192, "rougeL_f1")
                      + _score(run, "infbench_choice", 8192, "exact_match")) / 3

    def f1(item_id: str) -> float:
        recall, precision = 1 / len(keypoints(item_id)), 1 / 2
        return 2 * recall * precision / (recall + precision)

    summ_by_hand = (sum(f1(i["id"]) for i in _output(run, "infbench_sum", 8192)["data"]) / 3 * 100
                    + sum(f1(i["id"]) for i in _output(run, "multi_lexsum", 8192)["data"]) / 3 * 100) / 2
    helmet.merge(cfg, run, 0)
    after = read_json_averages(cfg, run)
    assert not after["LongQA"]["incomplete"] and abs(after["LongQA"]["value"] - longqa_by_hand) < 1e-9
    assert not after["Summ"]["incomplete"] and abs(after["Summ"]["value"] - summ_by_hand) < 1e-9
    # the judge is named wherever its scores are shown, as not the paper's
    assert read_json(run.stage_dir("helmet_scores") / "judge.json") == {
        "judge": f"{toy_model_dir} at {server.url}", "papers": False}
    assert "not the paper's gpt-4o-2024-05-13" in judge_note([run.root])


def read_json_averages(cfg: ExperimentConfig, run: RunDir) -> dict:
    helmet.merge(cfg, run, 0)
    return read_json(run.stage_dir("helmet_scores") / "averages.json")["base"]["8192"]["categories"]


def test_without_an_endpoint_nothing_is_judged(tmp_path):
    checkout = write_helmet_checkout(tmp_path / "HELMET")
    cfg = from_dict(ExperimentConfig, {"name": "j", "model": {"path": "/m"}, "helmet": {"path": str(checkout)}})
    assert [s.name for s in build_stages(cfg) if s.name.endswith("_judge")] == []
