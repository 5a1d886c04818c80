"""Retrieval scores (Wu et al. 2025): which heads copy-paste from the needle while decoding.

At each greedy step, every query head's attention argmax is computed from its query and the
cached keys exactly as the model scores them (RoPE, scaling and mask included), chunked over the
sequence, inside the model's own attention call. Attention weights are never materialized, so the
prefill runs on SDPA/flash and long contexts fit.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from retmask.generation import stop_ids

ARGMAX_CHUNK = 16384


class _Recorder:
    """Per-layer argmax positions of the newest query, filled during one decode step."""

    def __init__(self, num_layers: int):
        self.argmax: list[torch.Tensor | None] = [None] * num_layers
        self.query_position = 0  # absolute position of the token being decoded

    def absolute(self, index: torch.Tensor, key_length: int) -> torch.Tensor:
        """Key index → absolute position. A sliding-window or chunked layer's cache holds only the
        last keys; every dynamic cache layer hands attention keys that end at the query."""
        dropped = self.query_position + 1 - key_length
        if dropped < 0:
            raise RuntimeError(f"the attention keys ({key_length}) outnumber the positions so far "
                               f"({self.query_position + 1}): detection needs a dynamic cache, not a static one")
        return index + dropped


_ACTIVE: _Recorder | None = None


def head_argmax(query: torch.Tensor, key: torch.Tensor, attention_mask: torch.Tensor | None,
                scaling: float, chunk: int = ARGMAX_CHUNK) -> torch.Tensor:
    """Argmax over key positions of each query head's attention logits, for a single query.

    query: (batch, q_heads, 1, dim); key: (batch, kv_heads, seq, dim). Query heads share their
    group's key head (GQA). Logits are computed as eager attention computes them (model dtype,
    then scaled), and softmax keeps their order, so the argmax is that of the attention weights.
    Returns (batch, q_heads) positions.
    """
    batch, q_heads, _, dim = query.shape
    kv_heads, seq = key.shape[1], key.shape[2]
    group = q_heads // kv_heads
    grouped = query.reshape(batch, kv_heads, group, dim)
    best_value = torch.full((batch, kv_heads, group), float("-inf"), device=query.device)
    best_index = torch.zeros((batch, kv_heads, group), dtype=torch.long, device=query.device)
    for start in range(0, seq, chunk):
        logits = (torch.matmul(grouped, key[:, :, start:start + chunk].transpose(-1, -2)) * scaling).float()
        if attention_mask is not None:
            mask = attention_mask[..., -1:, start:start + chunk]  # (batch or 1, 1 or heads, 1, chunk)
            mask = mask.reshape(mask.shape[0], 1, 1, -1) if mask.shape[1] == 1 else \
                mask.reshape(mask.shape[0], kv_heads, group, -1)
            logits = logits.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else logits + mask.float()
        value, index = logits.max(dim=-1)  # first maximum, like argmax over softmax weights
        better = value > best_value
        best_value = torch.where(better, value, best_value)
        best_index = torch.where(better, index + start, best_index)
    return best_index.reshape(batch, q_heads)


def _wrapping(base_name: str):
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    def attention(module, query, key, value, attention_mask, scaling=None, **kwargs):
        if _ACTIVE is not None and query.shape[2] == 1:
            scale = scaling if scaling is not None else query.shape[-1] ** -0.5
            _ACTIVE.argmax[module.layer_idx] = _ACTIVE.absolute(head_argmax(query, key, attention_mask, scale),
                                                                key.shape[2])
        return ALL_ATTENTION_FUNCTIONS[base_name](module, query, key, value, attention_mask, scaling=scaling, **kwargs)

    return attention


def install_argmax_attention(model) -> str:
    """Switch `model` to a wrapper of its own attention implementation that can record argmaxes."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    base = model.config._attn_implementation
    if base.startswith("retmask_argmax_"):
        return base
    if base == "eager":  # eager is not in the registry; SDPA computes the same attention
        base = "sdpa"
    name = f"retmask_argmax_{base}"
    if name not in ALL_ATTENTION_FUNCTIONS:
        ALL_ATTENTION_FUNCTIONS.register(name, _wrapping(base))
        ALL_MASK_ATTENTION_FUNCTIONS.register(name, ALL_MASK_ATTENTION_FUNCTIONS[base])
    model.set_attn_implementation(name)
    return name


@contextlib.contextmanager
def _recording(num_layers: int):
    global _ACTIVE
    _ACTIVE = _Recorder(num_layers)
    try:
        yield _ACTIVE
    finally:
        _ACTIVE = None


@dataclass
class DetectionResult:
    generated_ids: list[int]
    hits: list[list[int]]  # [layer][head]: copies from inside the scored span


@torch.no_grad()
def argmax_steps(model, input_ids: list[int], max_new_tokens: int, stops: set[int]) -> Iterator[tuple[int, torch.Tensor]]:
    """Greedy decoding that yields (generated token, (layers, heads) absolute attention argmax
    positions).

    As in Wu et al., the prompt minus its last token is prefilled; every generated token then
    comes from a single-query step, whose attention argmax is taken inside the attention call.
    """
    install_argmax_attention(model)
    device = next(model.parameters()).device
    ids = torch.tensor([input_ids], device=device)
    cache = model(input_ids=ids[:, :-1], use_cache=True, logits_to_keep=1).past_key_values
    current = ids[:, -1:]
    with _recording(model.config.num_hidden_layers) as recorder:
        for step in range(max_new_tokens):
            recorder.query_position = len(input_ids) - 1 + step
            output = model(input_ids=current, past_key_values=cache, use_cache=True, logits_to_keep=1)
            cache = output.past_key_values
            token = int(output.logits[0, -1].argmax())
            if token in stops:
                return
            # layers spread over several GPUs record on their own device
            yield token, torch.stack([positions[0].to(device) for positions in recorder.argmax]).cpu()
            current = torch.tensor([[token]], device=device)


@torch.no_grad()
def recompute_argmax_steps(model, input_ids: list[int], max_new_tokens: int,
                           stops: set[int]) -> Iterator[tuple[int, torch.Tensor]]:
    """The definition itself, for reference: every step recomputes the whole sequence without a
    cache and reads each head's argmax off its materialized attention weights (whose masks, sliding
    windows included, the model applies itself), so positions are absolute by construction. Needs
    a model loaded with eager attention; quadratic in length."""
    ids = list(input_ids)
    for _ in range(max_new_tokens):
        output = model(input_ids=torch.tensor([ids]), use_cache=False, output_attentions=True)
        token = int(output.logits[0, -1].argmax())
        if token in stops:
            return
        yield token, torch.stack([attention[0, :, -1].argmax(dim=-1) for attention in output.attentions])
        ids.append(token)


def count_copy_hits(steps: Iterable[tuple[int, torch.Tensor]], input_ids: list[int],
                    span: tuple[int, int]) -> DetectionResult:
    """A head copies at a step when its argmax lies in `span` (the answer) and holds the generated
    token; a token copied twice counts twice, as in Wu et al."""
    start, end = span
    prompt = torch.tensor(input_ids)
    generated: list[int] = []
    hits = None
    for token, positions in steps:
        generated.append(token)
        in_span = (positions >= start) & (positions < end)
        copied = prompt[positions.clamp(max=len(input_ids) - 1)] == token  # generated positions never count
        step_hits = (in_span & copied).long()
        hits = step_hits if hits is None else hits + step_hits
    return DetectionResult(generated, hits.tolist() if hits is not None else [])


def detect_copy_hits(model, tokenizer, input_ids: list[int], span: tuple[int, int],
                     max_new_tokens: int) -> DetectionResult:
    result = count_copy_hits(argmax_steps(model, input_ids, max_new_tokens, set(stop_ids(model, tokenizer))),
                             input_ids, span)
    if not result.hits:  # nothing generated: no head copied
        config = model.config
        result.hits = [[0] * config.num_attention_heads for _ in range(config.num_hidden_layers)]
    return result


def rouge1_recall(reference: str, response: str) -> float:
    """ROUGE-1 recall of `reference` in `response` as Wu et al. compute it (rouge_score, Porter
    stemming, lower-cased ASCII alphanumeric words)."""
    return _rouge1_scorer().score(reference, response)["rouge1"].recall


@functools.cache
def _rouge1_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)
