from retmask.pairs import build_pairs


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
    assert stats["dropped"] == {"empty": 1, "identical": 1, "missing_chosen": 1, "missing_rejected": 1}
    assert stats["pairs"] == 1 and stats["mean_chosen_tokens"] == 3 and stats["mean_rejected_tokens"] == 1
