"""What a study's report will read is checked before any run starts: the long band against the
NIAH lengths (the 8B tau sweeps shipped with a long band of 96 tokens crashed at report time, after
every GPU job), each paper table against the study's variants, strategies and stages, and HELMET
categories against the config files run; every problem in one error."""
import pytest

from jobs.study import plan_runs
from retmask.study_checks import StudyCheckError
from retmask.study_config import load_study
from tests.conftest import REPO
from tests.helpers.paper_inputs import input_arguments

PAPER = REPO / "configs" / "paper"


def planned(tmp_path, paper_inputs, config: str, *changes: str):
    arguments = input_arguments(paper_inputs)
    study, experiment, base = load_study(PAPER / config, [*arguments[1::2], *changes])
    return plan_runs(study, experiment, base, tmp_path, study.seeds)


def test_a_long_band_beyond_every_niah_length_is_refused_before_any_run(tmp_path, paper_inputs):
    with pytest.raises(StudyCheckError, match=r"study.long_from=96: no NIAH length is below it \(evaluation.niah_lengths "
                                              r"\[1000, 32000, 8\] gives \[1000, 5429, .*, 32000\]\).*set study.long_from "
                                              r"between 1001 and 32000"):
        planned(tmp_path, paper_inputs, "table6-tau.yaml", "study.long_from=96")
    assert not (tmp_path / "study.json").exists()  # nothing written


def test_a_table_the_study_cannot_fill_is_refused_with_every_reason(tmp_path, paper_inputs):
    with pytest.raises(StudyCheckError) as error:
        planned(tmp_path, paper_inputs, "table8-sft.yaml", "study.strategies=[sft]",
                "study.paper_tables=[table8, table1]", "helmet.configs=[recall.yaml, rag.yaml, recall_short.yaml]")
    text = str(error.value)
    assert text.startswith("the study's report could not be written as configured; nothing was started")
    assert "table8: reads retrieval-mask runs of variant llama-3.1-8b-instruct, whose strategies are sft" in text
    assert "table1: reads variant qwen3-8b, which study.variants lacks (llama-3.1-8b-instruct)" in text
    assert ("table8: variant llama-3.1-8b-instruct needs HELMET Cite, Re-rank, ICL, LongQA, Summ at 131072, which none "
            "of helmet.configs runs (recall.yaml, rag.yaml, recall_short.yaml)") in text
    assert "needs HELMET RAG, Cite, Re-rank, ICL, LongQA, Summ at 8192" in text  # of the *_short.yaml files, recall


def test_a_table_reading_a_stage_the_runs_stop_before_is_refused(tmp_path, paper_inputs):
    with pytest.raises(StudyCheckError, match="figure5: reads stage evaluate of variant llama-3.1-8b-instruct, which "
                                              r"its runs do not reach \(study.until=merge_scores\)"):
        planned(tmp_path, paper_inputs, "figure4-concentration.yaml", "study.paper_tables=[figure4, figure5]")


def test_a_tau_proxy_over_categories_no_config_runs_is_refused(tmp_path, paper_inputs):
    with pytest.raises(StudyCheckError, match=r"variant olmo-3-7b-think: study.tau_metric=helmet_rouge needs HELMET Cite "
                                              r"at 65536, which none of helmet.configs runs"):
        planned(tmp_path, paper_inputs, "table6-tau.yaml",
                "study.variants.olmo-3-7b-think.config.helmet.configs=[recall_short.yaml, rag_short.yaml, "
                "rerank_short.yaml, longqa_short.yaml, summ_short.yaml, icl_short.yaml]")


def test_every_study_of_configs_paper_passes_the_checks(tmp_path, paper_inputs):
    for config in sorted(PAPER.glob("*.yaml")):
        assert planned(tmp_path / config.stem, paper_inputs, config.name), config.name
