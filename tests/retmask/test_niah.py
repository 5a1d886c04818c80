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
