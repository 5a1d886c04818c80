from retmask.config import PairsConfig
from retmask.pairs import build_pairs, build_sft


def row(pid, response, tokens=3):
    return {"prompt_id": pid, "messages": [{"role": "user", "content": f"q{pid}"}], "response": response,
            "prompt_tokens": 5, "completion_tokens": tokens}


def test_pairs_join_on_id_and_count_each_drop_reason():
    chosen = [row("a", "good"), row("b", "same"), row("c", ""), row("d", "only chosen")]
    rejected = [row("a", "bad", 1), row("b", "same"), row("c", "x"), row("e", "only rejected")]
    build = build_pairs(chosen, rejected)
    assert [p["prompt_id"] for p in build.pairs] == ["a"]
    assert build.pairs[0]["chosen"] == [{"role": "assistant", "content": "good"}]
    assert build.pairs[0]["prompt"] == [{"role": "user", "content": "qa"}]
    stats = build.statistics()
    assert stats["dropped"] == {"empty_chosen": 1, "identical": 1, "missing_chosen": 1, "missing_rejected": 1}
    assert stats["pairs"] == 1 and stats["mean_chosen_tokens"] == 3 and stats["mean_rejected_tokens"] == 1


def test_an_empty_rejected_response_is_a_rejection_kept_and_counted():
    chosen = [row("a", "w1 w2"), row("b", "w3"), row("c", "w4")]
    rejected = [row("a", "", 0), row("b", "  ", 0), row("c", "w9")]
    build = build_pairs(chosen, rejected)
    assert [p["prompt_id"] for p in build.pairs] == ["a", "b", "c"]
    assert build.pairs[0]["rejected"] == [{"role": "assistant", "content": ""}]
    stats = build.statistics()
    assert stats["kept_empty_rejected"] == 2 and stats["dropped"] == {}

    strict = build_pairs(chosen, rejected, PairsConfig(drop_empty_rejected=True))
    assert [p["prompt_id"] for p in strict.pairs] == ["c"]
    assert strict.statistics()["dropped"] == {"empty_rejected": 2}


def test_keeping_empty_chosen_is_a_choice_and_both_empty_is_identical():
    chosen = [row("a", ""), row("b", "")]
    rejected = [row("a", "w1"), row("b", "")]
    build = build_pairs(chosen, rejected, PairsConfig(drop_empty_chosen=False))
    assert [p["prompt_id"] for p in build.pairs] == ["a"]
    assert build.statistics()["dropped"] == {"identical": 1}


def test_sft_examples_drop_empty_chosen_responses():
    build = build_sft([row("a", "w1"), row("b", "")])
    assert [p["prompt_id"] for p in build.pairs] == ["a"]
    assert build.statistics()["dropped"] == {"empty_chosen": 1}
