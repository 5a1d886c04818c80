"""The toy model's word-level vocabulary and tokenizer.

Values (w*) and filler (f*) are disjoint on purpose: with a shared vocabulary the model learns
to pack the needle into its closing marker and no head ever copies from the needle itself.
"""
from __future__ import annotations

from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "[PAD]", "[BOS]", "[EOS]", "[UNK]"
SECRET, END, QUERY, ANSWER = "SECRET", "END", "QUERY", "ANSWER"
NUM_VALUES = 128
NUM_FILLER = 64

VALUES = [f"w{i}" for i in range(NUM_VALUES)]
FILLER = [f"f{i}" for i in range(NUM_FILLER)]
VOCAB = [PAD, BOS, EOS, UNK, SECRET, END, QUERY, ANSWER, *VALUES, *FILLER]

# A user turn is the haystack with its needle and the query; the assistant answers after ANSWER.
# Rendering the user turn always ends in ANSWER, so a prompt is a prefix of prompt + reply,
# which is what TRL's conversational DPO format requires.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ message['content'] }} ANSWER"
    "{% elif message['role'] == 'assistant' %} {{ message['content'] }} {{ eos_token }}"
    "{% endif %}{% endfor %}"
)


def build_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {token: index for index, token in enumerate(VOCAB)}
    backend = Tokenizer(WordLevel(vocab=vocab, unk_token=UNK))
    backend.pre_tokenizer = WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
