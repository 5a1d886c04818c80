"""Wu et al.'s retrieval score, written again from their definition for tests to compare against:
no cache (every step recomputes the whole sequence with eager attention, so positions are
absolute and every mask the model has is applied by the model itself), the answer located by
its token ids in the prompt, a hit when a head's attention argmax lies on the answer and that
token is the one generated, a test's score = hits / answer tokens."""
from __future__ import annotations

import torch


def locate_answer(prompt_ids: list[int], answer_ids: list[int]) -> tuple[int, int]:
    """The last occurrence of the answer's token ids in the prompt, as [start, end)."""
    width = len(answer_ids)
    for start in range(len(prompt_ids) - width, -1, -1):
        if prompt_ids[start:start + width] == answer_ids:
            return start, start + width
    raise AssertionError("the answer's tokens do not occur in the prompt")


@torch.no_grad()
def wu_scores(eager_model, prompt_ids: list[int], answer_ids: list[int], max_new_tokens: int,
              stops: set[int]) -> tuple[list[int], torch.Tensor]:
    """(generated ids, (layers, heads) score of this test)."""
    start, end = locate_answer(prompt_ids, answer_ids)
    config = eager_model.config
    hits = torch.zeros(config.num_hidden_layers, config.num_attention_heads)
    ids, generated = list(prompt_ids), []
    for _ in range(max_new_tokens):
        out = eager_model(input_ids=torch.tensor([ids]), use_cache=False, output_attentions=True)
        token = int(out.logits[0, -1].argmax())
        if token in stops:
            break
        for layer, attention in enumerate(out.attentions):
            for head in range(config.num_attention_heads):
                position = int(attention[0, head, -1].argmax())
                if start <= position < end and prompt_ids[position] == token:
                    hits[layer, head] += 1
        ids.append(token)
        generated.append(token)
    return generated, hits / (end - start)
