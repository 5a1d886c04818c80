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
        assert tokenizer.decode(inst.input_ids[start:end]).strip() == needle.needle
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
