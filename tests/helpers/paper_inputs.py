"""Everything the paper's studies read, as a user's folders would hold it, made in the tests:
the six models' checkpoint folders without weights (tests/helpers/paper_models.py), prompt sets in
the columns of LMSYS-Chat-1M, WildChat and Guru-RL-92K, a HELMET checkout whose eval.py follows
HELMET's interface (tests/helpers/helmet_checkout.py), lm-eval task files for Table 5's
benchmarks (tests/helpers/lm_eval_tasks.py), a checkout in Wu et al.'s layout for detection
(tests/helpers/wu_checkout.py) and the authors' published head scores of Llama-3.1-8B-Instruct."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

from tests.helpers.helmet_checkout import write_helmet_checkout
from tests.helpers.lm_eval_tasks import write_lm_eval_tasks
from tests.helpers.paper_models import write_checkpoints
from tests.helpers.wu_checkout import write_wu_checkout

AUTHORS_HEAD_SCORES = Path(__file__).resolve().parent / "authors_head_scores"
PAPER_STUDIES = sorted((Path(__file__).resolve().parents[2] / "configs" / "paper").glob("*.yaml"))

TOPICS = ["the weather in spring", "a recipe for bread", "sorting a list in Python", "the history of Rome",
          "how vaccines work", "a poem about the sea", "tips for sleeping well", "the rules of chess",
          "what a black hole is", "how to learn French", "a short story about a cat", "the capital of Peru"]
INPUT_OF = {"Llama-3.1-8B-Instruct": "llama", "Llama-3.2-3B-Instruct": "llama_3b", "Qwen3-8B": "qwen3",
            "Qwen3-0.6B": "qwen3_0_6b", "Olmo-3-7B-Think": "olmo3", "gemma-3-27b-it": "gemma"}


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def write_prompt_sets(root: Path) -> dict[str, str]:
    """A dozen prompts in each source's own columns (LMSYS-Chat-1M-Synth's with a redacted row, an
    empty and a duplicate Japanese instruction; a toxic WildChat row, for the filters to drop)."""
    lmsys = [{"conversation_id": f"lmsys-{i}", "model": "vicuna-13b", "turn": 1, "language": "English",
              "conversation": [{"role": "user", "content": f"Tell me about {topic}."},
                               {"role": "assistant", "content": "Sure."}],
              "translated_conversation": [{"role": "user", "content": f"{topic}について教えて。"}],
              "empty_user_instruction_ja": False, "duplicate_user_instruction_ja": None, "is_template_instruction": None,
              "openai_moderation": [{"flagged": False}], "redacted": i == 3} for i, topic in enumerate(TOPICS)]
    lmsys.append({**lmsys[0], "conversation_id": "lmsys-copy", "duplicate_user_instruction_ja": "lmsys-0"})
    lmsys.append({**lmsys[1], "conversation_id": "lmsys-empty", "empty_user_instruction_ja": True})
    wildchat = [{"conversation_hash": f"{i:032x}", "model": "gpt-4-0314", "turn": 1, "language": "English",
                 "conversation": [{"role": "user", "content": f"Could you explain {topic}?", "language": "English"},
                                  {"role": "assistant", "content": "Of course."}],
                 "toxic": i == 5, "redacted": False} for i, topic in enumerate(TOPICS)]
    guru = [{"data_source": "guru/math", "ability": "math", "reward_model": {"style": "rule", "ground_truth": "42"},
             "prompt": [{"role": "user", "content": f"A puzzle about {topic}: reason it out and box the answer."}],
             "extra_info": {"index": i}} for i, topic in enumerate(TOPICS)]
    return {"lmsys": _jsonl(root / "lmsys-chat-1m-synth.jsonl", lmsys), "wildchat": _jsonl(root / "wildchat.jsonl", wildchat),
            "guru": _jsonl(root / "guru-rl-92k.jsonl", guru)}


def write_paper_inputs(root: Path) -> dict[str, str]:
    """inputs.NAME -> path, for every input of configs/paper/shared/paper.yaml."""
    checkpoints = write_checkpoints(root / "models")
    llama_scores = root / "head_score" / "Llama-3.1-8B-Instruct.json"  # the authors' own file
    llama_scores.parent.mkdir(parents=True, exist_ok=True)
    llama_scores.write_bytes(gzip.decompress((AUTHORS_HEAD_SCORES / "Llama-3.1-8B-Instruct.json.gz").read_bytes()))
    return {**{INPUT_OF[name]: str(path) for name, path in checkpoints.items()}, **write_prompt_sets(root / "data"),
            "wu": str(write_wu_checkout(root / "Retrieval_Head")), "llama_head_scores": str(llama_scores),
            "helmet": str(write_helmet_checkout(root / "HELMET")), "lm_eval_tasks": str(write_lm_eval_tasks(root / "lm_eval_tasks"))}


def input_arguments(inputs: dict[str, str]) -> list[str]:
    return [argument for name, path in inputs.items() for argument in ("--set", f"inputs.{name}={path}")]
