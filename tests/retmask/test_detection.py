import pytest

from retmask.detection import DetectionError, merge_records, write_scores


def record(instance_id, kept, hits, answer_tokens=4):
    return {"instance_id": instance_id, "kept": kept, "hits": hits, "answer_tokens": answer_tokens,
            "needle_tokens": answer_tokens + 6}


def test_a_test_scores_copies_over_the_answer_tokens():
    scores = merge_records([record("a", True, [[4, 1]]), record("b", True, [[2, 0]], 2), record("c", False, [[0, 0]])],
                           layers=1, heads=2)
    assert scores == {"0-0": [1.0, 1.0], "0-1": [0.25, 0.0]}


def test_scores_after_training_average_over_the_instances_kept_before():
    after = [record("a", False, [[4, 0]]), record("b", True, [[0, 0]])]  # the trained model's own ROUGE aside
    assert merge_records(after, 1, 2, instance_ids={"a"}) == {"0-0": [1.0], "0-1": [0.0]}


def test_a_detection_that_keeps_nothing_names_the_rouge_filter(tmp_path):
    with pytest.raises(DetectionError, match="no NIAH instance was kept.*detection.rouge_threshold"):
        write_scores([record("a", False, [[0, 0]])], 1, 2, 0.1, tmp_path)
    assert not list(tmp_path.iterdir())
