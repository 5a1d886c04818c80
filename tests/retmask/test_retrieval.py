"""The fast argmax path equals materialized eager attention, head for head, step for step."""
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from retmask.generation import load_model
from retmask.retrieval import (
    argmax_steps,
    count_copy_hits,
    head_argmax,
    naive_argmax_steps,
    rouge1_recall,
)


def random_model(kind: str, attn: str):
    torch.manual_seed(0)
    common = dict(vocab_size=200, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=512)
    if kind == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common, rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                                                      "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                                      "original_max_position_embeddings": 64}))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    model.config._attn_implementation = attn
    model.set_attn_implementation(attn)
    return model.eval()


def traces(fast_model, eager_model, ids, steps=8):
    fast = list(argmax_steps(fast_model, ids, steps, stops=set()))
    naive = list(naive_argmax_steps(eager_model, ids, steps, stops=set()))
    return fast, naive


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_fast_argmax_equals_eager_on_random_gqa_models(kind):
    eager = random_model(kind, "eager")
    fast = random_model(kind, "sdpa")
    fast.load_state_dict(eager.state_dict())
    ids = torch.randint(4, 200, (150,)).tolist()
    fast_trace, naive_trace = traces(fast, eager, ids)
    assert [t for t, _ in fast_trace] == [t for t, _ in naive_trace]
    for (_, a), (_, b) in zip(fast_trace, naive_trace):
        assert torch.equal(a, b)


def test_chunked_argmax_equals_unchunked():
    torch.manual_seed(1)
    query, key = torch.randn(1, 8, 1, 16), torch.randn(1, 2, 1000, 16)
    assert torch.equal(head_argmax(query, key, None, 0.25, chunk=64), head_argmax(query, key, None, 0.25))


def test_toy_model_copy_hits_equal_eager_reference(toy_model_dir):
    from retmask.niah import build_instances

    fast, tokenizer = load_model(toy_model_dir)
    eager, _ = load_model(toy_model_dir, attn_implementation="eager")
    assets = toy_model_dir / "retmask_toy"
    instances = build_instances(tokenizer, assets / "haystack.txt", assets / "needles.jsonl", [40, 64, 2], 3,
                                "{context} {question}")
    stops = {tokenizer.eos_token_id}
    for inst in instances[:12]:
        a = count_copy_hits(argmax_steps(fast, inst.input_ids, 14, stops), inst.input_ids, inst.needle_span)
        b = count_copy_hits(naive_argmax_steps(eager, inst.input_ids, 14, stops), inst.input_ids, inst.needle_span)
        assert a == b


def test_rouge1_recall():
    assert rouge1_recall("w1 w2 w3 w4", "w1 w3 f2") == 0.5
    assert rouge1_recall("Dolores Park", "eat a sandwich in dolores park.") == 1.0
