from retmask.synthesis_config import PairsConfig
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


def reasoning_row(pid, reasoning, response, finish_reason="stop"):
    return {**row(pid, response, 40), "reasoning": reasoning, "finish_reason": finish_reason}


def test_a_qwen3_pair_keeps_its_reasoning_in_the_dataset_and_in_the_truncation_lengths():
    import datasets

    from retmask.dpo import pair_lengths
    from tests.helpers.qwen_bpe import qwen3_tokenizer

    tokenizer = qwen3_tokenizer()
    reasoning_field = "reasoning_content" in tokenizer.chat_template
    chosen = [reasoning_row("a", "The needle said Lisbon; copy it.", "Lisbon")]
    rejected = [reasoning_row("a", "I do not recall the book.", "Porto")]
    kept = build_pairs(chosen, rejected, PairsConfig(), reasoning_field)
    answers_only = build_pairs(chosen, rejected, PairsConfig(keep_reasoning=False), reasoning_field)
    pair = datasets.Dataset.from_list([{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in kept.pairs])[0]
    rendered = tokenizer.apply_chat_template(pair["prompt"] + pair["chosen"], tokenize=False)
    assert "<think>\nThe needle said Lisbon; copy it.\n</think>\n\nLisbon<|im_end|>" in rendered
    (with_reasoning, _), = pair_lengths(datasets.Dataset.from_list(kept.pairs), tokenizer)
    (answer_alone, _), = pair_lengths(datasets.Dataset.from_list(answers_only.pairs), tokenizer)
    assert with_reasoning >= answer_alone + 8  # the reasoning's tokens are counted


def test_reasoning_is_inlined_for_a_template_without_a_reasoning_field():
    build = build_pairs([reasoning_row("a", "think", "w1")], [reasoning_row("a", "hmm", "w2")])
    assert build.pairs[0]["chosen"] == [{"role": "assistant", "content": "<think>\nthink\n</think>\n\nw1"}]


def test_cut_off_responses_are_counted_per_side_and_dropped_as_configured():
    chosen = [reasoning_row("a", None, "w1", "length"), reasoning_row("b", None, "w2"), reasoning_row("c", None, "w3")]
    rejected = [reasoning_row("a", None, "x"), reasoning_row("b", None, "x x x", "length"), reasoning_row("c", None, "y")]
    stats = build_pairs(chosen, rejected).statistics()
    assert stats["dropped"] == {"truncated_chosen": 1} and stats["kept_truncated_rejected"] == 1
    rules = PairsConfig(drop_truncated_chosen=False, drop_truncated_rejected=True)
    stats = build_pairs(chosen, rejected, rules).statistics()
    assert stats["dropped"] == {"truncated_rejected": 1} and stats["kept_truncated_chosen"] == 1


def test_a_qwen3_response_cut_off_mid_think_stays_reasoning_never_a_second_think_block():
    from retmask.backends import split_reasoning
    from tests.helpers.qwen_bpe import qwen3_tokenizer

    tokenizer = qwen3_tokenizer()
    raw = "<think>\nThe book names Lisbon early on, but let me check the"  # the new-token cap hit here
    response, reasoning, finished = split_reasoning(raw)
    assert (response, reasoning, finished) == ("", "The book names Lisbon early on, but let me check the", False)
    cut = {**reasoning_row("a", reasoning, response, "length"), "reasoning_finished": finished}
    build = build_pairs([reasoning_row("a", "Lisbon is named.", "Lisbon")], [cut], PairsConfig(), True)
    pair = build.pairs[0]
    rendered = tokenizer.apply_chat_template(pair["prompt"] + pair["rejected"], tokenize=False)
    answer = rendered.split("<|im_start|>assistant\n")[-1]
    assert answer.count("<think>") == 1 and "let me check the\n</think>" in answer
    # the defect this replaces: the raw text as the answer renders a second think block
    raw_rendered = tokenizer.apply_chat_template(pair["prompt"] + [{"role": "assistant", "content": raw}],
                                                 tokenize=False)
    assert raw_rendered.split("<|im_start|>assistant\n")[-1].count("<think>") == 2
    assert build.statistics()["kept_unfinished_reasoning_rejected"] == 1

    dropped = build_pairs([reasoning_row("a", "Lisbon is named.", "Lisbon")], [cut],
                          PairsConfig(unfinished_reasoning="drop"), True)
    assert not dropped.pairs and dropped.statistics()["dropped"] == {"unfinished_reasoning_rejected": 1}


def test_a_response_cut_off_in_a_block_the_template_opened_is_reasoning_left_open():
    from retmask.backends import split_reasoning

    assert split_reasoning("So the answer must be", opened=True) == ("", "So the answer must be", False)
    assert split_reasoning("So it is.</think>Lisbon", opened=True) == ("Lisbon", "So it is.", True)
    assert split_reasoning("Plain answer.") == ("Plain answer.", None, True)
    row_ = {**reasoning_row("a", "So the answer must be", "", "length"), "reasoning_finished": False}
    from retmask.pairs import assistant_message
    assert assistant_message(row_, PairsConfig(), False) == {"role": "assistant", "content": "<think>\nSo the answer must be"}
