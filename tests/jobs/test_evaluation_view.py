"""Reasoning models evaluated as the paper did, read from what `--dry-run` prints: Qwen3 and
Olmo-3-Think run HELMET through vLLM with HELMET's --thinking (Qwen3 on an evaluation copy with
YaRN), lm-eval with thinking on, room to reason and the answer after </think>; NIAH prompts close
the reasoning block (Olmo-3-Think's template always opens one); Llama-3.1 gets none of it. The
checkpoints are the paper's models' own config and tokenizer files (tests/helpers/paper_models.py)."""
import json
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers.paper_inputs import input_arguments


def _cli(*arguments, cwd):
    return subprocess.run([sys.executable, "-m", "jobs.cli", *arguments], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"})


@pytest.fixture(scope="module")
def table5_dry_run(tmp_path_factory, paper_inputs):
    result = _cli("study", str(REPO / "configs/paper/table5-general.yaml"), "--cluster", "slurm-4xh100", "--profile-set", "partition=gpu",
                  "--dry-run", *input_arguments(paper_inputs), cwd=tmp_path_factory.mktemp("dry"))
    assert result.returncode == 0, result.stderr[-3000:]
    runs = re.split(r"^# ===== run ", result.stdout, flags=re.M)[1:]
    return {run.split(":")[0].split("/")[0].strip(): run for run in runs}


def _lines(run: str, prefix: str) -> list[str]:
    return [line for line in run.splitlines() if line.startswith(prefix)]


@pytest.mark.parametrize("variant", ["qwen3-8b", "olmo-3-7b-think"])
def test_a_reasoning_model_reasons_in_every_evaluation_command(table5_dry_run, variant):
    run = next(text for label, text in table5_dry_run.items() if label.startswith(variant))
    helmet = _lines(run, "# helmet_base:") + _lines(run, "# helmet:")
    # both models, HELMET's fourteen config files (Olmo-3, 64K positions: the seven *_short ones)
    assert len(helmet) == 2 * (14 if variant == "qwen3-8b" else 7)
    assert all("eval.py" in line and " --use_vllm --thinking" in line for line in helmet)
    (niah,) = _lines(run, "# NIAH prompts")
    assert niah.endswith("</think>\\n\\n'")  # answers at once: detection keeps its tests
    (general,) = _lines(run, "# general:")
    assert "'enable_thinking': True" in general and "'think_end_token': '</think>'" in general
    assert "'max_gen_toks': 32768" in general and "'gpqa_main_cot_zeroshot': 'exact_match,flexible-extract'" in general
    copies = {re.search(r"--model_name_or_path (\S+)", line)[1] for line in helmet}
    if variant == "qwen3-8b":  # 128K on its 40,960 positions: YaRN, on a copy of the checkpoint only
        assert all("/evaluation_models/" in path and "-rope-" in path for path in copies)
    else:
        assert not any("-rope-" in path for path in copies)


def test_a_model_that_does_not_reason_is_evaluated_plainly(table5_dry_run):
    run = next(text for label, text in table5_dry_run.items() if label.startswith("llama-3.1-8b-instruct"))
    helmet = _lines(run, "# helmet")
    assert helmet and not any("--thinking" in line or "--use_vllm" in line for line in helmet)
    (niah,) = _lines(run, "# NIAH prompts")
    assert "think" not in niah
    (general,) = _lines(run, "# general:")
    assert "enable_thinking" not in general and "gen_kwargs={}" in general


def test_qwen3_at_128k_without_rope_scaling_is_refused_before_anything(tmp_path, paper_inputs):
    result = _cli("submit", str(REPO / "configs/qwen3-8b.yaml"), "--cluster", "slurm-4xh100", "--profile-set", "partition=gpu", "--dry-run",
                  "--set", f"model.path={paper_inputs['qwen3']}", "--set", f"synthesis.prompts={paper_inputs['lmsys']}",
                  "--set", f"helmet.path={paper_inputs['helmet']}", "--set", "helmet.rope_scaling={}", cwd=tmp_path)
    assert result.returncode == 2 and not list(tmp_path.iterdir())
    assert (f"helmet.lengths [65536, 131072]: past the 40960 positions of {paper_inputs['qwen3']}; drop those lengths or set "
            "helmet.rope_scaling (applied to evaluation copies only), e.g. {rope_type: yarn, factor: 4.0, "
            "original_max_position_embeddings: 32768}") in result.stderr


def test_the_yarn_copy_serves_128k_as_vllm_and_transformers_read_it(tmp_path, paper_inputs):
    """YaRN factor 4 over Qwen3's 32,768 trained positions: 131,072, as vLLM derives a model's
    length (its rule for rope types that count the scaling in max_position_embeddings) and as
    transformers builds the rotary embedding (YaRN's attention factor 0.1 ln(4) + 1)."""
    import math

    from transformers import AutoConfig

    from retmask.model_positions import checkpoint_positions, evaluation_copy

    scaling = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    assert checkpoint_positions(paper_inputs["qwen3"]) == 40960
    copy = evaluation_copy(paper_inputs["qwen3"], scaling, tmp_path)
    assert checkpoint_positions(copy) == 131072 and evaluation_copy(paper_inputs["qwen3"], scaling, tmp_path) == copy
    config = AutoConfig.from_pretrained(copy)
    assert config.max_position_embeddings == 131072
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    _, attention_factor = ROPE_INIT_FUNCTIONS["yarn"](config, "cpu")
    assert attention_factor == pytest.approx(0.1 * math.log(4) + 1)
    assert (copy / "tokenizer.json").resolve() == (Path(paper_inputs["qwen3"]) / "tokenizer.json").resolve()
    assert json.loads((Path(paper_inputs["qwen3"]) / "config.json").read_text())["max_position_embeddings"] == 40960
