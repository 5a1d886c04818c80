import pytest
import torch

from retmask.generation import load_model
from retmask.masking import (
    mask_heads_in_memory,
    write_masked_checkpoint,
    zero_head_columns,
)


def test_zero_head_columns_touches_only_that_heads_slice():
    weight = torch.ones(4, 8)
    masked = zero_head_columns(weight, [1], dim=2)
    assert masked[:, 2:4].abs().sum() == 0
    assert masked[:, :2].sum() + masked[:, 4:].sum() == 4 * 6
    assert weight.sum() == 32  # the original is not modified


def test_masked_checkpoint_gives_the_in_memory_mask_logits(toy_model_dir, tmp_path):
    heads = [(0, 1), (2, 5), (2, 6)]
    out = write_masked_checkpoint(toy_model_dir, heads, tmp_path / "masked")
    from_disk, tokenizer = load_model(out)
    in_memory, _ = load_model(toy_model_dir)
    mask_heads_in_memory(in_memory, heads)
    original, _ = load_model(toy_model_dir)
    ids = torch.tensor([tokenizer("[BOS] f1 f2 SECRET w1 w2 w3 END f3 QUERY ANSWER w1")["input_ids"]])
    assert torch.equal(from_disk(ids).logits, in_memory(ids).logits)
    assert not torch.equal(original(ids).logits, in_memory(ids).logits)
    # the original weights are linked, not copied: only the changed o_proj tensors are new bytes
    added = sum(p.stat().st_size for p in out.iterdir() if not p.is_symlink())
    model_bytes = sum(p.stat().st_size for p in toy_model_dir.glob("*.safetensors"))
    assert added < 0.25 * model_bytes


def _random_model(kind):
    import transformers

    torch.manual_seed(0)
    common = dict(vocab_size=200, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=128)
    config_cls, model_cls = {"qwen2": ("Qwen2Config", "Qwen2ForCausalLM"), "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"),
                             "mistral": ("MistralConfig", "MistralForCausalLM"),
                             "olmo": ("OlmoConfig", "OlmoForCausalLM")}[kind]
    config = getattr(transformers, config_cls)(**common)
    return getattr(transformers, model_cls)(config).eval()



@pytest.mark.parametrize("kind", ["qwen2", "qwen3", "mistral", "olmo"])
def test_masked_checkpoint_equals_in_memory_mask_across_architectures(kind, tmp_path):
    from transformers import AutoModelForCausalLM

    heads = [(0, 3), (1, 0), (1, 7)]
    model = _random_model(kind)
    model.save_pretrained(tmp_path / "model")
    masked_dir = write_masked_checkpoint(tmp_path / "model", heads, tmp_path / "masked")
    from_disk = AutoModelForCausalLM.from_pretrained(masked_dir).eval()
    mask_heads_in_memory(model, heads)
    ids = torch.randint(0, 200, (1, 12))
    with torch.no_grad():
        assert torch.equal(from_disk(ids).logits, model(ids).logits)
        bias = getattr(model.model.layers[1].self_attn.o_proj, "bias", None)
        assert bias is None or bias.abs().sum() > 0  # an o_proj bias is not per head: left alone


def test_missing_o_proj_is_one_clear_error():
    from retmask.masking import find_o_proj_pattern

    assert find_o_proj_pattern(["model.layers.0.self_attn.o_proj.weight"]) == "model.layers.{layer}.self_attn.o_proj"
    with pytest.raises(ValueError, match="pass the model's o_proj path pattern"):
        find_o_proj_pattern(["transformer.h.0.attn.c_proj.weight"])


def test_masked_checkpoint_links_only_the_weight_files_its_index_uses(tmp_path):
    """Mistral repositories ship consolidated.safetensors beside the shards; an engine finding it in
    the masked checkpoint would load it (unmasked) instead of following the index."""
    import shutil

    model = _random_model("mistral")
    model.save_pretrained(tmp_path / "model")
    shutil.copy(tmp_path / "model" / "model.safetensors", tmp_path / "model" / "consolidated.safetensors")
    masked_dir = write_masked_checkpoint(tmp_path / "model", [(0, 1)], tmp_path / "masked")
    names = sorted(p.name for p in masked_dir.iterdir())
    assert "consolidated.safetensors" not in names and "config.json" in names
    assert sorted(n for n in names if n.endswith(".safetensors")) == ["model-00001-of-00001.safetensors",
                                                                      "retmask-masked-o_proj.safetensors"]


def test_the_masked_file_must_sort_after_the_original_weight_files():
    from retmask.masking import check_masked_file_read_last

    check_masked_file_read_last(["model-00001-of-00004.safetensors", "model-00004-of-00004.safetensors"])
    with pytest.raises(ValueError, match="'weights-00001.safetensors' sorts after"):
        check_masked_file_read_last(["weights-00001.safetensors"])
