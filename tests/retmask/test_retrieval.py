"""The fast argmax path equals a full eager recompute (absolute positions, every layer type),
head for head, step for step; scores equal Wu et al.'s rule written again from its definition."""
import pytest
import torch
from transformers import (
    Llama4ForCausalLM,
    Llama4TextConfig,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Olmo3Config,
    Olmo3ForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from retmask.generation import load_model
from retmask.retrieval import (
    argmax_steps,
    head_argmax,
    recompute_argmax_steps,
    rouge1_recall,
)


WINDOW = 24  # shorter than every prompt below, so sliding layers drop keys from their cache


def random_model(kind: str, attn: str):
    torch.manual_seed(0)
    common = dict(vocab_size=200, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=512)
    if kind == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common, rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                                                      "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                                      "original_max_position_embeddings": 64}))
    elif kind == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    elif kind == "qwen2-sliding":  # upper layer sliding, as max_window_layers makes it
        model = Qwen2ForCausalLM(Qwen2Config(**common, use_sliding_window=True, sliding_window=WINDOW,
                                             max_window_layers=1))
    elif kind == "mistral-sliding":  # every layer sliding
        model = MistralForCausalLM(MistralConfig(**common, sliding_window=WINDOW))
    elif kind == "olmo3":  # three sliding layers, then a full one, as Olmo-3 does
        model = Olmo3ForCausalLM(Olmo3Config(**{**common, "num_hidden_layers": 4}, sliding_window=WINDOW))
    elif kind == "llama4-chunked":  # a chunked-attention layer, then a full one, as Llama 4 does
        model = Llama4ForCausalLM(Llama4TextConfig(**{**common, "head_dim": 8}, intermediate_size_mlp=128,
                                                   attention_chunk_size=WINDOW, num_local_experts=1,
                                                   interleave_moe_layer_step=1, moe_layers=[], no_rope_layers=[1, 0]))
    else:
        raise ValueError(kind)
    model.config._attn_implementation = attn
    model.set_attn_implementation(attn)
    return model.eval()


def traces(fast_model, eager_model, ids, steps=8):
    fast = list(argmax_steps(fast_model, ids, steps, stops=set()))
    reference = list(recompute_argmax_steps(eager_model, ids, steps, stops=set()))
    return fast, reference


@pytest.mark.parametrize("kind", ["llama", "qwen2", "qwen2-sliding", "mistral-sliding", "olmo3", "llama4-chunked"])
def test_fast_argmax_equals_a_full_recompute_in_absolute_positions(kind):
    eager = random_model(kind, "eager")
    fast = random_model(kind, "sdpa")
    fast.load_state_dict(eager.state_dict())
    torch.manual_seed(2)
    ids = torch.randint(4, 200, (150,)).tolist()
    fast_trace, reference_trace = traces(fast, eager, ids)
    assert [t for t, _ in fast_trace] == [t for t, _ in reference_trace]
    for step, ((_, a), (_, b)) in enumerate(zip(fast_trace, reference_trace)):
        assert torch.equal(a, b), (kind, step, a, b)
    if "sliding" in kind or kind == "olmo3":  # the window really cut the cache, and was honoured
        sliding = [i for i, t in enumerate(eager.config.layer_types) if t == "sliding_attention"] \
            if getattr(eager.config, "layer_types", None) else range(eager.config.num_hidden_layers)
        for _, positions in fast_trace:
            assert (positions[list(sliding)] > len(ids) - 1 - WINDOW).all()
    if kind == "llama4-chunked":  # the chunk's first position bounds what its layer can attend
        for step, (_, positions) in enumerate(fast_trace):
            assert (positions[0] >= (len(ids) - 1 + step) // WINDOW * WINDOW).all()


def test_chunked_argmax_equals_unchunked():
    torch.manual_seed(1)
    query, key = torch.randn(1, 8, 1, 16), torch.randn(1, 2, 1000, 16)
    assert torch.equal(head_argmax(query, key, None, 0.25, chunk=64), head_argmax(query, key, None, 0.25))


def test_toy_scores_equal_wu_rule_written_from_its_definition(toy_model_dir):
    """Head for head, on the shipped toy model: `detect_instance` against tests/helpers/wu_reference
    (answer located by its token ids, full eager recompute, hits / answer tokens). The copy heads
    of an instance answered exactly score 1.0, as Wu et al.'s rule gives."""
    from retmask.detection import detect_instance
    from retmask.niah import build_instances
    from tests.helpers.wu_reference import wu_scores

    fast, tokenizer = load_model(toy_model_dir)
    eager, _ = load_model(toy_model_dir, attn_implementation="eager")
    assets = toy_model_dir / "retmask_toy"
    instances = build_instances(tokenizer, assets / "haystack.txt", assets / "needles.jsonl", [40, 64, 2], 3,
                                "{context} {question}")
    best = []
    for inst in instances[::4]:
        record = detect_instance(fast, tokenizer, inst, 14, 0.5)
        answer_ids = tokenizer(inst.answer, add_special_tokens=False)["input_ids"]
        generated, reference = wu_scores(eager, inst.input_ids, answer_ids, 14, {tokenizer.eos_token_id})
        assert tokenizer.decode(generated) == record["response"]
        assert record["answer_tokens"] == len(answer_ids) < record["needle_tokens"]
        assert torch.allclose(torch.tensor(record["hits"]) / record["answer_tokens"], reference), inst.instance_id
        if record["response"] == inst.answer:  # copied exactly: its best head copied every answer token
            best.append(float(reference.max()))
    assert len(best) >= 6 and min(best) == 1.0, best


def test_rouge1_recall_is_wus_stemmed_recall():
    assert rouge1_recall("w1 w2 w3 w4", "w1 w3 f2") == 0.5
    assert rouge1_recall("Dolores Park", "eat a sandwich in dolores park.") == 1.0
    assert rouge1_recall("eat a sandwich", "eating sandwiches") == 2 / 3  # stemmed: eat, sandwich
