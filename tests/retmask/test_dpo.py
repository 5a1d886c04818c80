"""DPO in the paper's regime (train.regime: trl-0.24): the first batch the trainer sees is the one
TRL 0.24 built from the same pair, computed with TRL 0.24's own functions (tests/helpers/trl_v0_24)."""
import datasets
import pytest
import torch

from retmask.config import TrainConfig
from retmask.dpo import build_dpo_trainer
from tests.helpers.trl_v0_24 import flush_left, flush_right, maybe_apply_chat_template, tokenize_row

MAX_PROMPT, MAX_LENGTH = 6, 12


def trl_0_24_batch(row: dict, tokenizer, max_prompt_length: int, max_length: int) -> list[list[int]]:
    """TRL 0.24's DPO input ids for one pair, [chosen, rejected]: its templating and tokenize_row
    (with the arguments its _prepare_dataset passes), its collator's padding (prompt on the left,
    completions on the right), concatenated_inputs and concatenated_forward's keep_end cut."""
    text = maybe_apply_chat_template(row, tokenizer)
    tokens = tokenize_row(text, tokenizer, max_prompt_length, None, add_special_tokens=False)
    prompt = torch.tensor([tokens["prompt_input_ids"]] * 2)
    completions = [tokens["chosen_input_ids"], tokens["rejected_input_ids"]]
    width = max(map(len, completions))
    completion = torch.tensor([ids + [0] * (width - len(ids)) for ids in completions])
    completion_mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in completions])
    input_ids = torch.cat((prompt, completion), dim=1)
    attention_mask = torch.cat((torch.ones_like(prompt), completion_mask), dim=1)
    loss_mask = torch.cat((torch.zeros_like(prompt), completion_mask), dim=1)
    assert max_length < attention_mask.size(1), "the example must be long enough to be cut"
    attention_mask, input_ids, loss_mask = flush_right(attention_mask, input_ids, loss_mask)
    input_ids, attention_mask = input_ids[:, -max_length:], attention_mask[:, -max_length:]
    attention_mask, input_ids = flush_left(attention_mask, input_ids)
    return [ids[mask.bool()].tolist() for ids, mask in zip(input_ids, attention_mask)]


@pytest.fixture(scope="module")
def long_pair(toy_tokenizer):
    prompt = [{"role": "user", "content": "Copy the code K7Q2 from the first line of this long note, please. " * 2}]
    row = {"prompt": prompt, "chosen": [{"role": "assistant", "content": "The code is K7Q2, as the note says."}],
           "rejected": [{"role": "assistant", "content": "No."}]}
    return row


def test_the_first_batch_is_cut_as_trl_0_24_cut_it(long_pair, toy_model_dir, toy_tokenizer, tmp_path):
    from retmask.generation import load_model

    model, tokenizer = load_model(str(toy_model_dir), "float32", for_training=True)
    train = TrainConfig(regime="trl-0.24", max_length=MAX_LENGTH, max_prompt_length=MAX_PROMPT,
                        global_batch_size=1, per_device_batch_size=1, max_steps=1, bf16=False,
                        gradient_checkpointing=False, save_steps=10)
    trainer = build_dpo_trainer(model, tokenizer, datasets.Dataset.from_list([long_pair]), train,
                                tmp_path / "trainer", tmp_path / "log.jsonl")
    batch = next(iter(trainer.get_train_dataloader()))
    ours = [ids[mask.bool()].tolist() for ids, mask in zip(batch["input_ids"], batch["attention_mask"])]

    expected = trl_0_24_batch(long_pair, tokenizer, MAX_PROMPT, MAX_LENGTH)
    assert ours == expected
    # by hand: the long chosen sequence keeps its last 12 tokens, ending in the EOS TRL 0.24 appended;
    # the short rejected one is the prompt's last 6 tokens and the response, uncut
    assert len(ours[0]) == MAX_LENGTH and ours[0][-1] == tokenizer.eos_token_id
    prompt = tokenizer.apply_chat_template(long_pair["prompt"], tokenize=False, add_generation_prompt=True)
    whole = tokenizer.apply_chat_template(long_pair["prompt"] + long_pair["rejected"], tokenize=False)
    assert whole.startswith(prompt)
    assert ours[1] == (tokenizer(prompt, add_special_tokens=False)["input_ids"][-MAX_PROMPT:]
                       + tokenizer(whole[len(prompt):], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])
    loss = trainer.compute_loss(trainer.model, trainer._prepare_inputs(batch))
    assert torch.isfinite(loss)
