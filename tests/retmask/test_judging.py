"""Judges of the win-lose-pair baseline: ratings read back from a judge's text, the reference
judge's scores, the preferred sample put on the chosen side, and a judge model run for real."""
import pytest

from retmask.judging import (
    DEFAULT_JUDGE_TEMPLATE,
    JudgeError,
    ModelJudge,
    ReferenceJudge,
    Verdict,
    parse_rating,
)
from retmask.pairs import order_by_verdicts

QUESTION = [{"role": "user", "content": "f1 SECRET w1 w2 w3 END f2 QUERY"}]


def test_the_last_double_bracket_rating_is_read():
    assert parse_rating("Helpful and correct. Rating: [[8]]") == 8.0
    assert parse_rating("was [[3]] at first, then Rating: [[7.5]]") == 7.5
    assert parse_rating("Rating: 8/10") is None


def test_the_reference_judge_scores_recall_of_the_answer_and_needs_one():
    scores = ReferenceJudge().score([(QUESTION, "w1 w2 w3", "w1 w2 w3"), (QUESTION, "w1 w9", "w1 w2 w3"),
                                     (QUESTION, "", "w1 w2 w3")])
    assert scores == [pytest.approx(1.0), pytest.approx(1 / 3), 0.0]
    with pytest.raises(JudgeError, match="reference"):
        ReferenceJudge().score([(QUESTION, "w1", None)])


def test_the_preferred_sample_becomes_chosen_and_ties_are_dropped_and_counted():
    first = [{"prompt_id": p, "response": f"first {p}"} for p in "abcd"]
    second = [{"prompt_id": p, "response": f"second {p}"} for p in "abcd"]
    verdicts = {"a": Verdict("a", 0.9, 0.1), "b": Verdict("b", 0.2, 0.8), "c": Verdict("c", 0.5, 0.5),
                "d": Verdict("d", None, 0.4)}
    winners, losers, dropped = order_by_verdicts(first, second, verdicts)
    assert [w["response"] for w in winners] == ["first a", "second b"]
    assert [l["response"] for l in losers] == ["second a", "first b"]
    assert dropped == {"judge_tie": 2}


def test_a_judge_model_runs_on_its_chat_template_and_gives_none_without_a_rating(toy_model_dir):
    # The toy model cannot grade: it answers the template in its own vocabulary, with no rating to read.
    judge = ModelJudge(str(toy_model_dir), "float32", DEFAULT_JUDGE_TEMPLATE, max_new_tokens=8, batch_size=2)
    scores = judge.score([(QUESTION, "w1 w2 w3", None), (QUESTION, "w7", None)])
    assert scores == [None, None]
