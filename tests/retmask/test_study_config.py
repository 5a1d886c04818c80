"""Study files: the shipped study loads, its runs take their strategy and seed, and a study
that would mislead (report seeds among the development ones, unknown names) is refused."""
import pytest

from retmask.config import ConfigError
from tests.conftest import REPO


def test_the_shipped_study_loads_and_its_runs_take_their_strategy_and_seed():
    from retmask.study_config import load_study, study_run_config

    study, experiment, base = load_study(REPO / "configs" / "toy-study.yaml")
    assert len(study.seeds) >= 3 and not set(study.seeds) & set(study.development_seeds)
    assert {"retrieval-mask", "random-mask", "non-retrieval-mask", "smaller-model", "sft",
            "win-lose-pair"} <= set(study.strategies)
    cfg = study_run_config(experiment, base, "s", "win-lose-pair", 7)
    assert (cfg.strategy, cfg.synthesis.sampling.seed, cfg.train.seed) == ("win-lose-pair", 7, 7)
    assert experiment["strategy" if "strategy" in experiment else "name"] != "s"  # the study's mapping is untouched


@pytest.mark.parametrize("change, message", [
    ("study.seeds=[0, 1]", "seeds \\[0\\] are also development seeds"),
    ("study.strategies=[retmask]", "study.strategies\\[\\]: 'retmask' is not one of"),
    ("study.metric=bleu", "study.metric: 'bleu' is not one of rouge_recall, accuracy"),
])
def test_a_study_that_would_mislead_is_refused(change, message):
    from retmask.study_config import load_study

    with pytest.raises(ConfigError, match=message):
        load_study(REPO / "configs" / "toy-study.yaml", [change])


def test_a_config_without_a_study_section_is_not_a_study():
    from retmask.study_config import load_study

    with pytest.raises(ConfigError, match="no `study` section"):
        load_study(REPO / "configs" / "tiny.yaml")
