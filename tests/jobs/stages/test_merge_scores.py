"""Published head scores (detection.scores_file) in place of detection: the authors' own files give
the paper's head counts, a wrong model's file is one error, and a run on a score file selects the
heads selecting from the detection output would, while the untrained model's detection for the
retrieval scores before training is measured in evaluate_base."""
import gzip
import json

import pytest

from jobs.local import LocalPipeline
from jobs.pipeline import build_stages
from jobs.runner import record_config
from retmask.config import load_config
from retmask.heads import HeadError, mean_scores, read_score_file, select_threshold
from retmask.io import read_json, read_jsonl
from tests.conftest import REPO, SMALL_RUN

AUTHORS = REPO / "tests" / "helpers" / "authors_head_scores"


def authors_file(name: str, tmp_path) -> str:
    path = tmp_path / f"{name}.json"
    path.write_bytes(gzip.decompress((AUTHORS / f"{name}.json.gz").read_bytes()))
    return str(path)


@pytest.mark.parametrize("name, shape, tau, heads", [
    ("Llama-3.1-8B-Instruct", (32, 32), 0.1, 33), ("Qwen3-8B", (36, 32), 0.05, 98)])
def test_the_authors_files_give_the_head_counts_of_their_masks(name, shape, tau, heads, tmp_path):
    """YoumiMa/RetMask's head_score files: 33 heads >= 0.1 (Llama-3.1-8B-Instruct) and 98 >= 0.05
    (Qwen3-8B), counted by its mask_retrieval_head.py's rule (mean of each list, >= the threshold)."""
    path = authors_file(name, tmp_path)
    scores = read_score_file(path, *shape)
    raw = json.loads(open(path).read())
    by_authors_rule = sum(sum(values) / len(values) >= tau for values in raw.values())
    assert len(select_threshold(mean_scores(scores), tau)) == by_authors_rule == heads


def test_a_file_for_another_model_is_one_error_naming_both_shapes(tmp_path):
    path = authors_file("Qwen3-8B", tmp_path)  # 36 x 32 heads, given to Llama-3.1's 32 x 32
    with pytest.raises(HeadError, match=r"1152 heads over 36 layers x 32 heads, but the model has 32 x 32 = 1024; "
                                        r"outside it: 32-0"):
        read_score_file(path, 32, 32)
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(HeadError, match="head_score format"):
        read_score_file(str(tmp_path / "bad.json"), 32, 32)


def test_a_run_on_a_score_file_selects_the_detected_heads_and_detects_the_base_itself(small_toy_run, tmp_path):
    detected = small_toy_run.run
    published = detected.stage_dir("merge_scores") / "retrieval_scores.json"
    cfg = load_config(REPO / "configs" / "tiny.yaml", SMALL_RUN + [f"detection.scores_file={published}"])
    cfg.run_dir = str(tmp_path / "run")
    assert "detect" not in {stage.name for stage in build_stages(cfg)}
    run = record_config(cfg)
    for until in ("select_heads", "evaluate_base"):
        LocalPipeline(cfg, run, log=lambda line: None, until=until).execute(max_parallel=2)

    ours, theirs = (read_json(r.stage_dir("select_heads") / "heads.json") for r in (run, detected))
    assert ours["retrieval_heads"] == theirs["retrieval_heads"] and ours["heads"] == theirs["heads"]
    summary = read_json(run.stage_dir("merge_scores") / "summary.json")
    assert summary["source"] == str(published) and summary["ranked"] == read_json(
        detected.stage_dir("merge_scores") / "summary.json")["ranked"]
    # the scores before training: the untrained model detected here, as the detect stage did there
    before = read_jsonl(run.stage_dir("evaluate_base") / "trained_model_detection.jsonl")
    def hits(records):
        return sorted((r["instance_id"], r["kept"], r["hits"]) for r in records)

    assert hits(before) == hits(detected.finished_rows("detect"))
