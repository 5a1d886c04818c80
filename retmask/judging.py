"""Judges for the win-lose-pair baseline: two samples of the normal model per prompt, the one the
judge rates higher is chosen, the other rejected; a tie makes no pair.

Two judges: `ReferenceJudge` scores a response by the ROUGE-1 recall of the prompt's reference
answer (prompt sets that carry references, as the toy's); `ModelJudge` asks a local chat model (HF or
vLLM) to rate each response on a 1-10 scale with a single-answer grading prompt (the paper used
Gemma-3-27B-IT) and reads the rating it writes as "[[N]]".
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from retmask.errors import UserError

# Single-answer grading in the style of MT-Bench's judge prompt: the rating comes last, in a form
# that is easy to read back.
DEFAULT_JUDGE_TEMPLATE = (
    "Please act as an impartial judge and evaluate the quality of the response provided by an AI "
    "assistant to the user question displayed below. Consider its helpfulness, relevance, accuracy, "
    "depth and level of detail. Begin your evaluation with a short explanation, then rate the "
    "response on a scale of 1 to 10 by strictly following this format: \"Rating: [[5]]\".\n\n"
    "[Question]\n{question}\n\n[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]"
)
RATING = re.compile(r"\[\[(\d+(?:\.\d+)?)\]\]")


class JudgeError(UserError):
    pass


def parse_rating(text: str) -> float | None:
    """The last "[[N]]" rating in a judge's output; None when it wrote none."""
    found = RATING.findall(text)
    return float(found[-1]) if found else None


def question_text(messages: list[dict]) -> str:
    """The conversation as the judge reads it: the user's last turn, with earlier turns before it."""
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


@dataclass
class Verdict:
    prompt_id: str
    first: float | None  # the chosen-stage sample's score
    second: float | None  # the rejected-stage sample's score

    @property
    def winner(self) -> str | None:
        """"first", "second", or None (a tie, or a score missing)."""
        if self.first is None or self.second is None or self.first == self.second:
            return None
        return "first" if self.first > self.second else "second"


def judge_statistics(verdicts, ties: str) -> dict:
    """How decisive the judge was: prompts judged, ties (equal ratings), unrated (a side without a
    rating), and their rates; `ties`: what the pairs did with them (judge.ties)."""
    verdicts = list(verdicts)
    judged = len(verdicts)
    unrated = sum(v.first is None or v.second is None for v in verdicts)
    tied = sum(v.first is not None and v.first == v.second for v in verdicts)
    return {"judged": judged, "ties": tied, "unrated": unrated, "ties_handling": ties,
            "tie_rate": round(tied / judged, 4) if judged else 0.0,
            "unrated_rate": round(unrated / judged, 4) if judged else 0.0}


class ReferenceJudge:
    def score(self, items: list[tuple[list[dict], str, str | None]]) -> list[float]:
        from retmask.retrieval import rouge1_recall

        scores = []
        for messages, response, reference in items:
            if reference is None:
                raise JudgeError("judge.kind reference needs a reference answer for every prompt (a `reference` "
                                 "column in the prompt set); use judge.kind: model for prompts without one")
            scores.append(rouge1_recall(reference, response))
        return scores


class ModelJudge:
    """A local judge model through the synthesis backends (HF or vLLM), decoding greedily."""

    def __init__(self, path: str, dtype: str, template: str, max_new_tokens: int, batch_size: int,
                 backend: str = "hf"):
        from retmask.backends import make_backend

        self.backend = make_backend(backend, path, dtype, batch_size)
        self.template = template
        self.max_new_tokens = max_new_tokens

    def score(self, items: list[tuple[list[dict], str, str | None]]) -> list[float | None]:
        from retmask.synthesis_config import SamplingConfig

        prompts = [[{"role": "user", "content": self.template.format(question=question_text(messages),
                                                                     answer=response)}]
                   for messages, response, _ in items]
        greedy = SamplingConfig(temperature=0.0, max_new_tokens=self.max_new_tokens)
        outputs = self.backend.generate(prompts, greedy, [0] * len(prompts))
        return [parse_rating(output.text) for output in outputs]


def make_judge(cfg):
    """The judge a JudgeConfig describes."""
    if cfg.kind == "reference":
        return ReferenceJudge()
    return ModelJudge(cfg.path, cfg.dtype, cfg.template, cfg.max_new_tokens, cfg.batch_size, cfg.backend)
