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
