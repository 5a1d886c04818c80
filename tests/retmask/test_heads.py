import pytest

from retmask.heads import (
    HeadError,
    check_heads,
    concentration,
    parse_head,
    select_heads,
)

SCORES = {"0-0": 0.9, "0-1": 0.0, "1-0": 0.3, "1-1": 0.05, "2-0": 0.1, "2-1": 0.0}


def test_parse_head_accepts_both_spellings():
    assert parse_head("L3-H7") == (3, 7) == parse_head("3-7")
    with pytest.raises(HeadError, match="LAYER-HEAD"):
        parse_head("three")


def test_threshold_is_inclusive_and_ranked():
    assert select_heads(SCORES, "threshold", tau=0.1).heads == ["0-0", "1-0", "2-0"]


def test_controls_match_the_retrieval_count_and_are_seeded():
    non = select_heads(SCORES, "non_retrieval", tau=0.1, seed=3)
    assert len(non.heads) == 3 and not set(non.heads) & {"0-0", "1-0", "2-0"}
    assert non.heads == select_heads(SCORES, "non_retrieval", tau=0.1, seed=3).heads
    assert len(select_heads(SCORES, "random", tau=0.1, seed=1).heads) == 3


def test_top_k():
    assert select_heads(SCORES, "top_k", tau=0.1, top_k=2).heads == ["0-0", "1-0"]


def test_heads_outside_the_model_are_one_error():
    with pytest.raises(HeadError, match=r"heads 4-0, 0-9 are outside the model: layers 0..3, heads 0..7"):
        check_heads([(4, 0), (0, 9), (1, 1)], layers=4, heads_per_layer=8)


def test_concentration_orders_sparse_above_flat():
    sparse = concentration({f"0-{i}": (1.0 if i == 0 else 0.0) for i in range(10)}, tau=0.1)
    flat = concentration({f"0-{i}": 0.5 for i in range(10)}, tau=0.1)
    assert sparse["gini"] > flat["gini"]
    assert sparse["normalized_entropy"] < flat["normalized_entropy"]
    assert sparse["heads_at_or_above_tau"] == 1 and flat["heads_at_or_above_tau"] == 10
