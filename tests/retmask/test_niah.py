import pytest

from retmask.niah import (
    HaystackTokens,
    Needle,
    NiahError,
    build_instance,
    load_haystack,
)

NEEDLE = Needle("SECRET w1 w2 w3 END", "QUERY", "w1 w2 w3")


def haystack(toy_tokenizer, words=200):
    return HaystackTokens(toy_tokenizer, " ".join(f"f{i % 64}" for i in range(words)))


@pytest.mark.parametrize("depth", [0.0, 25.0, 50.0, 100.0])
def test_needle_span_holds_the_needle_at_the_requested_depth(toy_tokenizer, depth):
    inst = build_instance(toy_tokenizer, haystack(toy_tokenizer), NEEDLE, 0, 45, depth, "{context} {question}")
    start, end = inst.needle_span
    assert toy_tokenizer.decode(inst.input_ids[start:end]) == NEEDLE.needle
    assert inst.actual_depth == depth  # word-level: every token is a boundary
    # BOS + 40 haystack words + needle + QUERY ANSWER
    assert len(inst.input_ids) == 1 + 40 + 5 + 2


def test_answer_span_is_the_answer_inside_the_needle(toy_tokenizer):
    inst = build_instance(toy_tokenizer, haystack(toy_tokenizer), NEEDLE, 0, 45, 50.0, "{context} {question}")
    (n_start, n_end), (a_start, a_end) = inst.needle_span, inst.answer_span
    assert toy_tokenizer.decode(inst.input_ids[a_start:a_end]) == NEEDLE.answer
    assert n_start < a_start and a_end < n_end  # SECRET before, END after: markers are never scored
    assert inst.record()["answer_span"] == (a_start, a_end)


def test_bpe_answer_span_holds_the_answer_words():
    from retmask.niah import DEFAULT_TEMPLATE, load_haystack, load_needles
    from tests.helpers.qwen_bpe import qwen_bpe_tokenizer

    tokenizer = qwen_bpe_tokenizer()
    hay = HaystackTokens(tokenizer, load_haystack("builtin", min_words=3000))
    for needle_id, needle in enumerate(load_needles("builtin")):
        inst = build_instance(tokenizer, hay, needle, needle_id, 600, 50.0, DEFAULT_TEMPLATE)
        start, end = inst.answer_span
        assert needle.answer in tokenizer.decode(inst.input_ids[start:end])


def test_needles_accept_wus_real_needle_and_refuse_an_answer_outside_the_needle(tmp_path):
    from retmask.niah import load_needles

    wu = tmp_path / "wu.jsonl"
    wu.write_text('{"needle": "The best thing is to eat a sandwich.", "question": "What?", '
                  '"real_needle": "eat a sandwich"}\n')
    assert load_needles(wu)[0].answer == "eat a sandwich"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"needle": "The best thing is to eat a sandwich.", "question": "What?", "answer": "a pizza"}\n')
    with pytest.raises(NiahError, match="line 1: answer 'a pizza' does not occur in needle"):
        load_needles(bad)


def test_special_tokens_are_added_exactly_once(toy_tokenizer):
    """A chat template writes BOS itself; a model without one gets it from its tokenizer."""
    from tokenizers.processors import TemplateProcessing

    from retmask.niah import render_prompt
    from retmask.toy.vocab import build_tokenizer

    prompt, add = render_prompt(toy_tokenizer, "{context} {question}", "f1 f2", "QUERY")
    ids = toy_tokenizer(prompt, add_special_tokens=add)["input_ids"]
    assert ids.count(toy_tokenizer.bos_token_id) == 1 and ids[0] == toy_tokenizer.bos_token_id
    base = build_tokenizer()  # as a base model's: no chat template, BOS added by the tokenizer
    base.chat_template = None
    base.backend_tokenizer.post_processor = TemplateProcessing(single="[BOS] $A", special_tokens=[("[BOS]", 1)])
    prompt, add = render_prompt(base, "{context} {question} ANSWER", "f1 f2", "QUERY")
    assert base(prompt, add_special_tokens=add)["input_ids"] == [1, *base(prompt, add_special_tokens=False)["input_ids"]]


def test_needle_longer_than_context_is_one_clear_error(toy_tokenizer):
    with pytest.raises(NiahError, match="does not fit a context of 4 tokens"):
        build_instance(toy_tokenizer, haystack(toy_tokenizer), NEEDLE, 0, 4, 50.0, "{context} {question}")


def test_empty_haystack_is_one_clear_error(tmp_path):
    (tmp_path / "h.txt").write_text("  \n")
    with pytest.raises(NiahError, match="is empty"):
        load_haystack(tmp_path / "h.txt")


def test_bpe_depths_land_on_sentence_boundaries_within_a_sentence_of_the_request():
    from retmask.niah import DEFAULT_TEMPLATE, load_haystack, load_needles
    from tests.helpers.qwen_bpe import qwen_bpe_tokenizer

    tokenizer = qwen_bpe_tokenizer()
    hay = HaystackTokens(tokenizer, load_haystack("builtin", min_words=3000))
    longest_sentence = max(b - a for a, b in zip(hay.sentence_starts, hay.sentence_starts[1:]))
    needle = load_needles("builtin")[0]
    for depth in (0.0, 25.0, 50.0, 75.0, 100.0):
        inst = build_instance(tokenizer, hay, needle, 0, 2000, depth, DEFAULT_TEMPLATE)
        start, end = inst.needle_span
        assert needle.needle in tokenizer.decode(inst.input_ids[start:end])  # a boundary token may merge with "<book>"
        hay_tokens = 2000 - len(tokenizer(needle.needle, add_special_tokens=False)["input_ids"])
        assert abs(inst.actual_depth - depth) / 100 * hay_tokens <= longest_sentence, (depth, inst.actual_depth)
        before = tokenizer.decode(inst.input_ids[:start]).rstrip()
        assert depth == 0.0 or before.endswith("."), before[-40:]  # a sentence ends right before the needle
        assert inst.input_ids[-1] != tokenizer.eos_token_id and "<think>" in tokenizer.decode(inst.input_ids[-8:])


def test_builtin_haystack_is_long_and_deterministic():
    from retmask.niah import load_haystack

    text = load_haystack("builtin", min_words=50000)
    assert len(text.split()) >= 50000 and text == load_haystack("builtin", min_words=50000)


def test_haystack_from_a_saved_dataset(tmp_path):
    import datasets

    from retmask.niah import load_haystack

    datasets.Dataset.from_dict({"text": ["First essay.", "Second essay."]}).save_to_disk(str(tmp_path / "d"))
    assert load_haystack(tmp_path / "d") == "First essay.\n\nSecond essay."
    with pytest.raises(NiahError, match="no column 'body'"):
        load_haystack(tmp_path / "d", column="body")


def test_prompts_beyond_the_models_positions_are_refused_unless_allowed(toy_tokenizer):
    from retmask.niah import check_within_positions

    inst = build_instance(toy_tokenizer, haystack(toy_tokenizer), NEEDLE, 0, 150, 50.0, "{context} {question}")
    check_within_positions([inst], 14, 256, "detection")
    with pytest.raises(NiahError, match="needs 167 positions .* max_position_embeddings 160; use shorter lengths"):
        check_within_positions([inst], 14, 160, "detection")
    check_within_positions([inst], 14, 160, "detection", allowed=True)


def test_the_papers_detection_grid_is_wus_linspace():
    """configs/paper's detection: Wu's script run as the paper's README does (--s 0 --e 5000): its
    np.round(np.linspace(s, e, num=20)) lengths and np.round(np.linspace(0, 100, num=10)) depths."""
    import numpy as np
    import yaml

    from retmask.niah import depth_grid, grid
    from tests.conftest import REPO

    detection = yaml.safe_load((REPO / "configs/paper/shared/paper.yaml").read_text())["detection"]
    assert grid(*detection["lengths"]) == np.round(np.linspace(0, 5000, num=20, endpoint=True)).astype(int).tolist()
    assert depth_grid(detection["depths"]) == np.round(np.linspace(0, 100, num=10, endpoint=True)).astype(int).tolist()
    assert detection["haystack"] == "${wu}/haystack_for_detect"
    assert detection["needles"] == "${wu}/haystack_for_detect/needles.jsonl"


def test_wus_haystack_layout_gives_each_needle_its_own_part(tmp_path):
    from retmask.niah import DEFAULT_TEMPLATE, build_instances
    from tests.helpers.qwen_bpe import qwen_bpe_tokenizer
    from tests.helpers.wu_checkout import TOPICS, write_wu_checkout

    tokenizer = qwen_bpe_tokenizer()
    folder = write_wu_checkout(tmp_path, words=800) / "haystack_for_detect"
    instances = build_instances(tokenizer, folder, folder / "needles.jsonl", [0, 300, 2], 2, DEFAULT_TEMPLATE)
    assert [(i.length, i.needle_id) for i in instances] == [(0, 0), (0, 1), (0, 2)] * 2 + [(300, 0), (300, 1), (300, 2)] * 2
    for instance in instances:
        text = tokenizer.decode(instance.input_ids)
        assert (TOPICS[instance.needle_id] in text) == (instance.length > 0)  # length 0: the needle alone
        assert all(TOPICS[other] not in text for other in range(3) if other != instance.needle_id)
        start, end = instance.answer_span
        assert instance.answer.lower() in tokenizer.decode(instance.input_ids[start:end]).lower()
    # the capitalised answer is scored on the needle's own words
    assert instances[2].answer == "because she is a kind person and also she can fix any clock."
