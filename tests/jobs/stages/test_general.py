import importlib.util

import pytest

from jobs.stages.general import task_scores
from jobs.pipeline import build_stages
from retmask.config import ConfigError, ExperimentConfig, from_dict

# The `results` section of an lm-evaluation-harness output (its format, as a fixture).
RESULTS = {"gpqa_main_zeroshot": {"alias": "gpqa_main_zeroshot", "acc,none": 0.31, "acc_stderr,none": 0.02,
                                  "acc_norm,none": 0.30},
           "minerva_math500": {"alias": "math", "exact_match,none": 0.42, "exact_match_stderr,none": 0.02}}


def test_scores_take_the_configured_metric_else_the_first():
    assert task_scores(RESULTS, {}) == {"gpqa_main_zeroshot": 0.31, "minerva_math500": 0.42}
    assert task_scores(RESULTS, {"gpqa_main_zeroshot": "acc_norm,none"})["gpqa_main_zeroshot"] == 0.30
    with pytest.raises(KeyError, match="no metric 'f1'"):
        task_scores(RESULTS, {"minerva_math500": "f1"})


@pytest.mark.skipif(importlib.util.find_spec("lm_eval") is not None, reason="lm-eval is installed here")
def test_tasks_without_lm_eval_installed_is_one_clear_error():
    with pytest.raises(ConfigError, match="lm-evaluation-harness is not installed"):
        from_dict(ExperimentConfig, {"name": "g", "general": {"tasks": ["gpqa_main_zeroshot"]}})


def test_no_tasks_no_stage():
    assert "general" not in {s.name for s in build_stages(from_dict(ExperimentConfig, {"name": "g"}))}
