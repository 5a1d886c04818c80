"""The vLLM backend run for real: vLLM's CPU build in its own environment (tests/helpers/vllm_env.py)
runs tests/helpers/vllm_checks.py on the shipped toy model."""
import json
import os
import subprocess

import pytest

from tests.conftest import REPO, wait_for

COPY_HEADS = "3-0,3-1,3-4,3-5,3-6,3-7"  # the default toy's retrieval heads (detection with tau 0.5)


@pytest.fixture(scope="module")
def findings(toy_model_dir, tmp_path_factory, vllm_environment_build):
    from tests.helpers.vllm_env import vllm_python

    if vllm_environment_build is not None:
        wait_for(vllm_environment_build, "building the vLLM CPU environment")
    python, work = vllm_python(), tmp_path_factory.mktemp("vllm")
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1",
           "VLLM_ENFORCE_EAGER": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run([str(python), str(REPO / "tests/helpers/vllm_checks.py"), str(toy_model_dir),
                             str(work), COPY_HEADS],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-5000:]
    return json.loads((work / "findings.json").read_text())


def test_a_synthesis_shard_runs_through_vllm_and_resumes_to_the_same_rows(findings):
    assert findings["rows"] == 24 and findings["distinct_responses"] > 1
    assert findings["resumed_equals_whole"]


def test_the_engine_gets_the_shards_whole_prompt_list_not_a_batch_at_a_time(findings):
    assert findings["most_in_flight"] == 24  # synthesis.batch_size is 8


def test_the_engine_context_is_the_models_own_when_max_model_len_is_unset(findings):
    assert findings["max_model_len"] == 256  # the toy's max_position_embeddings


def stripped(texts):  # vLLM's incremental detokenizer keeps the word-level toy tokenizer's leading space
    return [text.strip() for text in texts]


def test_vllm_loads_the_masked_checkpoint_as_the_hf_model_masked_in_memory(findings):
    assert stripped(findings["vllm_base"]) == stripped(findings["hf_base"])
    assert stripped(findings["vllm_masked"]) == stripped(findings["hf_masked"])
    assert stripped(findings["vllm_masked"]) != stripped(findings["vllm_base"])  # the mask reached the engine
