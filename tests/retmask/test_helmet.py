"""The HELMET parser on a fake output tree named and shaped exactly as HELMET's eval.py writes it."""
import json

import pytest

from retmask.errors import UserError
from retmask.helmet import (
    CATEGORIES,
    HelmetError,
    category_averages,
    find_results,
    parse_score_file,
)

# dataset -> (dataset field at 8192, at 16384, test_name at 8192, at 16384, gen max, size, shots, chat),
# as in HELMET's configs/*_short.yaml
RUNS = {
    "json_kv": ("json_kv", "json_kv", "test_k105_dep6", "test_k220_dep6", 100, 100, 2, False),
    "ruler_niah_mk_2": ("ruler_niah_mk_2",) * 2 + ("validation_8192", "validation_16384", 50, 100, 2, False),
    "ruler_niah_mk_3": ("ruler_niah_mk_3",) * 2 + ("validation_8192", "validation_16384", 100, 100, 2, False),
    "ruler_niah_mv": ("ruler_niah_mv",) * 2 + ("validation_8192", "validation_16384", 50, 100, 2, False),
    "nq": ("kilt_nq",) * 2 + ("nq-dev-multikilt_1000_k50_dep6", "nq-dev-multikilt_1000_k105_dep6", 20, 100, 2, False),
    "triviaqa": ("kilt_triviaqa",) * 2 + ("triviaqa-dev-multikilt_1000_k50_dep6",
                                          "triviaqa-dev-multikilt_1000_k105_dep6", 20, 100, 2, False),
    "hotpotqa": ("kilt_hotpotqa",) * 2 + ("hotpotqa-dev-multikilt_1000_k50_dep3",
                                          "hotpotqa-dev-multikilt_1000_k105_dep3", 20, 100, 2, False),
    "popqa": ("kilt_popqa_3",) * 2 + ("popqa_test_1000_k50_dep6", "popqa_test_1000_k105_dep6", 20, 100, 2, False),
    "alce_asqa": ("alce_asqa_30", "alce_asqa_75", "asqa_eval_gtr_top2000", "asqa_eval_gtr_top2000",
                  300, 100, 2, True),
    "alce_qampari": ("alce_qampari_30", "alce_qampari_75", "qampari_eval_gtr_top2000",
                     "qampari_eval_gtr_top2000", 300, 100, 2, True),
    "msmarco_rerank_psg": ("msmarco_rerank_psg",) * 2 + ("test_reranking_data_k50_dep3",
                                                         "test_reranking_data_k130_dep3", 200, 100, 2, False),
    "trec_coarse": ("icl_trec_coarse_400shot_balance", "icl_trec_coarse_800shot_balance", "", "", 20, 500, 0, False),
    "trec_fine": ("icl_trec_fine_400shot_balance", "icl_trec_fine_800shot_balance", "", "", 20, 500, 0, False),
    "banking77": ("icl_banking77_360shot_balance", "icl_banking77_720shot_balance", "", "", 20, 500, 0, False),
    "clinic150": ("icl_clinic150_440shot_balance", "icl_clinic150_880shot_balance", "", "", 20, 500, 0, False),
    "nlu": ("icl_nlu_510shot_balance", "icl_nlu_1020shot_balance", "", "", 20, 500, 0, False),
    "narrativeqa": ("narrativeqa_7892", "narrativeqa_16084", "", "", 100, 100, 2, True),
    "infbench_qa": ("infbench_qa_eng_7982", "infbench_qa_eng_16174", "", "", 10, 100, 2, True),
    "infbench_choice": ("infbench_choice_eng_7982", "infbench_choice_eng_16174", "", "", 10, 100, 2, True),
    "infbench_sum": ("infbench_sum_eng_6792", "infbench_sum_eng_14984", "", "", 1200, 100, 2, True),
    "multi_lexsum": ("multi_lexsum_7492", "multi_lexsum_15684", "", "", 400, 100, 2, True),
}

# the metrics as the files hold them: eval.py's x100 values, ALCE's 0-100, GPT-4 f1 on 0-1, score on 0-3
SCORES = {
    8192: {"json_kv": 80, "ruler_niah_mk_2": 90, "ruler_niah_mk_3": 70, "ruler_niah_mv": 60,
           "nq": 50, "triviaqa": 70, "hotpotqa": 40, "popqa": 40,
           "alce_asqa": (40, 20, 30), "alce_qampari": (10, 20, 30), "msmarco_rerank_psg": 30,
           "trec_coarse": 90, "trec_fine": 70, "banking77": 80, "clinic150": 85, "nlu": 75,
           "narrativeqa": 1.8, "infbench_qa": 30, "infbench_choice": 60, "infbench_sum": 0.2, "multi_lexsum": 0.4},
    16384: {"json_kv": 70, "ruler_niah_mk_2": 80, "ruler_niah_mk_3": 60, "ruler_niah_mv": 50,
            "nq": 40, "triviaqa": 60, "hotpotqa": 30, "popqa": 30,
            "alce_asqa": (30, 10, 20), "alce_qampari": (10, 10, 20), "msmarco_rerank_psg": 20,
            "trec_coarse": 80, "trec_fine": 60, "banking77": 70, "clinic150": 75, "nlu": 65,
            "narrativeqa": 1.5, "infbench_qa": 20, "infbench_choice": 50, "infbench_sum": 0.1, "multi_lexsum": 0.3},
}

# the key each single-metric dataset's file holds its score under, as HELMET's tasks write it
METRIC = {**dict.fromkeys(["json_kv", "nq", "triviaqa", "hotpotqa", "popqa"], "substring_exact_match"),
          **dict.fromkeys(["ruler_niah_mk_2", "ruler_niah_mk_3", "ruler_niah_mv"], "ruler_recall"),
          **dict.fromkeys(["trec_coarse", "trec_fine", "banking77", "clinic150", "nlu", "infbench_choice"],
                          "exact_match"),
          "msmarco_rerank_psg": "NDCG@10", "infbench_qa": "rougeL_f1"}

# worked out by hand: category = mean of its dataset-metric values (GPT-4 rescaled), overall = mean of 7
EXPECTED = {
    8192: {"Recall": (80 + 90 + 70 + 60) / 4, "RAG": (50 + 70 + 40 + 40) / 4,
           "Cite": (40 + 20 + 30 + 10 + 20 + 30) / 6, "Re-rank": 30.0, "ICL": (90 + 70 + 80 + 85 + 75) / 5,
           "LongQA": (1.8 * 100 / 3 + 30 + 60) / 3, "Summ": (20 + 40) / 2},
    16384: {"Recall": (70 + 80 + 60 + 50) / 4, "RAG": (40 + 60 + 30 + 30) / 4,
            "Cite": (30 + 10 + 20 + 10 + 10 + 20) / 6, "Re-rank": 20.0, "ICL": (80 + 60 + 70 + 75 + 65) / 5,
            "LongQA": (1.5 * 100 / 3 + 20 + 50) / 3, "Summ": (10 + 30) / 2},
}
OVERALL = {8192: (75 + 50 + 25 + 30 + 80 + 50 + 30) / 7, 16384: (65 + 40 + 100 / 6 + 20 + 70 + 40 + 20) / 7}


def helmet_name(dataset: str, length: int, tag: str = "v1") -> str:
    """eval.py's output name for one (dataset, length), from HELMET's configs."""
    field8, field16, test8, test16, gen, size, shots, chat = RUNS[dataset]
    field, test = (field8, test8) if length == 8192 else (field16, test16)
    return (f"{field}_{tag}_{test}_in{length}_size{size}_shots{shots}_sampFalsemax{gen}min0t0.0p1.0"
            f"_chat{chat}_42.json")


def write_tree(root, lengths=(8192, 16384)):
    """What a finished HELMET run leaves: raw outputs, .score files, ALCE scores, GPT-4 eval files."""
    root.mkdir(parents=True, exist_ok=True)
    paths = {}
    for length in lengths:
        for dataset, score in SCORES[length].items():
            name = helmet_name(dataset, length)
            if dataset.startswith("alce"):
                first = "str_em" if dataset == "alce_asqa" else "qampari_rec_top5"
                metrics = {"length": 40.0, "str_hit": 12.0, first: score[0],
                           "citation_rec": score[1], "citation_prec": score[2]}
                averaged = {"str_em": 1.0, "input_len": 7000.0}  # eval.py's own, without citations
            elif dataset in ("narrativeqa", "infbench_sum", "multi_lexsum"):
                averaged = {"rougeL_f1": 11.0, "rougeL_recall": 12.0, "rougeLsum_f1": 13.0, "rougeLsum_recall": 14.0,
                            "input_len": 7000.0, "output_len": 80.0}
                metrics = averaged
                key = "gpt-4-score" if dataset == "narrativeqa" else "gpt-4-f1"
                gpt4 = root / name.replace(".json", "-gpt4eval_o.json")
                gpt4.write_text(json.dumps({"args": {}, "data": [], "averaged_metrics": {**averaged, key: score}}))
                paths[dataset, length, "gpt4"] = gpt4
            else:
                key = METRIC[dataset]
                averaged = {key: score, "input_len": float(length - 100), "output_len": 5.0}
                metrics = averaged
            (root / name).write_text(json.dumps({"args": {}, "data": [], "averaged_metrics": averaged}))
            (root / (name + ".score")).write_text(json.dumps(metrics, indent=4))
            paths[dataset, length, "score"] = root / (name + ".score")
            paths[dataset, length, "raw"] = root / name
    (root / (helmet_name("json_kv", 8192) + ".batch")).write_text("{}")  # noise HELMET can leave
    return paths


def test_the_tree_covers_every_helmet_dataset():
    assert set(RUNS) == {s.name for specs in CATEGORIES.values() for s in specs}
    assert list(CATEGORIES) == ["Recall", "RAG", "Cite", "Re-rank", "ICL", "LongQA", "Summ"]


def test_category_and_overall_averages_match_the_hand_computed_ones(tmp_path):
    write_tree(tmp_path / "out")
    results = find_results(tmp_path / "out", [8192, 16384])
    assert all(r.value is not None and r.error is None for r in results)
    averages = category_averages(results, lengths=[8192, 16384])
    for length in (8192, 16384):
        got = averages[length]
        assert set(got.categories) == set(EXPECTED[length])
        for category, value in EXPECTED[length].items():
            assert got.categories[category].value == pytest.approx(value), (length, category)
            assert not got.categories[category].incomplete
        assert got.overall.value == pytest.approx(OVERALL[length])
        assert not got.overall.incomplete and got.overall.missing == [] and got.not_requested == []


def test_gpt4_scores_come_from_the_gpt4eval_file_and_are_rescaled(tmp_path):
    paths = write_tree(tmp_path / "out", lengths=(8192,))
    narrative = [r for r in find_results(tmp_path / "out", [8192], datasets=["narrativeqa"])]
    assert [(r.metric, r.path) for r in narrative] == [("gpt-4-score", paths["narrativeqa", 8192, "gpt4"])]
    assert narrative[0].value == pytest.approx(60.0)
    alce = parse_score_file(paths["alce_qampari", 8192, "score"])
    assert [(r.dataset, r.length, r.metric, r.value) for r in alce] == [
        ("alce_qampari", 8192, "qampari_rec_top5", 10), ("alce_qampari", 8192, "citation_rec", 20),
        ("alce_qampari", 8192, "citation_prec", 30)]


def test_rouge_scoring_puts_rouge_from_the_score_file_in_place_of_the_judge(tmp_path):
    """The paper's pilot proxy: narrativeqa by ROUGE-L F1 (as HELMET scores infbench_qa), the
    summaries by ROUGE-Lsum F1, read from .json.score beside the GPT-4 file; the rest unchanged."""
    paths = write_tree(tmp_path / "out")
    results = find_results(tmp_path / "out", [8192, 16384], scoring="rouge")
    judged = {(r.dataset, r.length): r for r in results if r.dataset in ("narrativeqa", "infbench_sum", "multi_lexsum")}
    for (dataset, length), result in judged.items():
        assert result.path == paths[dataset, length, "score"]
        assert (result.metric, result.value) == (("rougeL_f1", 11.0) if dataset == "narrativeqa" else ("rougeLsum_f1", 13.0))
    averages = category_averages(results, lengths=[8192, 16384], scoring="rouge")
    for length in (8192, 16384):
        got = averages[length].categories
        assert got["LongQA"].value == pytest.approx((11.0 + SCORES[length]["infbench_qa"]
                                                     + SCORES[length]["infbench_choice"]) / 3)
        assert got["Summ"].value == pytest.approx(13.0)
        for category in ("Recall", "RAG", "Cite", "Re-rank", "ICL"):
            assert got[category].value == pytest.approx(EXPECTED[length][category])
    with pytest.raises(HelmetError, match="scoring 'bleu': expected one of judge, rouge"):
        find_results(tmp_path / "out", [8192], scoring="bleu")


def test_a_removed_file_makes_its_category_and_the_overall_incomplete_by_name(tmp_path):
    paths = write_tree(tmp_path / "out")
    paths["nq", 16384, "score"].unlink()
    paths["nq", 16384, "raw"].unlink()
    averages = category_averages(find_results(tmp_path / "out", [8192, 16384]))
    at16 = averages[16384]
    assert at16.categories["RAG"].value is None and at16.categories["RAG"].incomplete
    assert at16.overall.value is None and at16.overall.incomplete
    (missing,) = at16.overall.missing
    assert (missing.dataset, missing.length) == ("nq", 16384)
    assert missing.path == tmp_path / "out" / "kilt_nq_*_*_in16384_*.json.score"
    assert "nq at length 16384" in str(missing) and "no result file" in str(missing)
    assert at16.categories["Recall"].value == pytest.approx(EXPECTED[16384]["Recall"])  # others stay whole
    assert averages[8192].overall.value == pytest.approx(OVERALL[8192])
    assert not averages[8192].overall.incomplete


def test_a_missing_gpt4_eval_or_broken_file_is_named_not_averaged_around(tmp_path):
    paths = write_tree(tmp_path / "out")
    paths["multi_lexsum", 8192, "gpt4"].unlink()  # its .score remains, without gpt-4-f1
    paths["banking77", 8192, "score"].write_text("{not json")
    at8 = category_averages(find_results(tmp_path / "out", [8192]))[8192]
    assert at8.categories["Summ"].value is None and at8.categories["ICL"].value is None
    assert at8.categories["Cite"].value == pytest.approx(EXPECTED[8192]["Cite"])
    named = {m.dataset: m for m in at8.overall.missing}
    assert set(named) == {"multi_lexsum", "banking77"} and at8.overall.value is None
    assert named["multi_lexsum"].path == paths["multi_lexsum", 8192, "score"]
    assert "gpt-4-f1" in named["multi_lexsum"].reason and "eval_gpt4_summ.py" in named["multi_lexsum"].reason
    assert "cannot read it as JSON" in named["banking77"].reason


def test_two_runs_of_one_dataset_are_reported_unless_a_tag_picks_one(tmp_path):
    write_tree(tmp_path / "out", lengths=(8192,))
    other = helmet_name("json_kv", 8192, tag="v2")
    (tmp_path / "out" / (other + ".score")).write_text(json.dumps({"substring_exact_match": 0.0}))
    (kv,) = find_results(tmp_path / "out", [8192], datasets=["json_kv"])
    assert kv.value is None and "2 runs" in kv.error
    (kv,) = find_results(tmp_path / "out", [8192], datasets=["json_kv"], tag="v1")
    assert kv.value == 80


def test_a_subset_of_datasets_is_said_to_be_one(tmp_path):
    write_tree(tmp_path / "out", lengths=(8192,))
    recall = ["json_kv", "ruler_niah_mk_2", "ruler_niah_mk_3", "ruler_niah_mv"]
    got = category_averages(find_results(tmp_path / "out", [8192], datasets=recall), recall)[8192]
    assert list(got.categories) == ["Recall"] and got.overall.value == pytest.approx(75.0)
    assert "nq" in got.not_requested and "json_kv" not in got.not_requested


def test_bad_input_is_a_user_error_naming_what_is_wrong(tmp_path):
    with pytest.raises(HelmetError, match="does not exist or is not a directory") as info:
        find_results(tmp_path / "nowhere", [8192])
    assert isinstance(info.value, UserError) and str(tmp_path / "nowhere") in str(info.value)
    with pytest.raises(HelmetError, match="unknown HELMET dataset"):
        find_results(tmp_path, [8192], datasets=["kilt_nq"])
    with pytest.raises(HelmetError, match="positive input lengths"):
        find_results(tmp_path, [])
    with pytest.raises(HelmetError, match="not a HELMET result"):
        parse_score_file(tmp_path / "results.json")


def test_cite_without_its_nli_model_cached_is_refused_before_any_job(tmp_path, monkeypatch, paper_inputs):
    """eval_alce.py loads google/t5_xxl_true_nli_mixture by name; eval.py swallows its failure, so
    without it in the cache the jobs' Cite would only turn up missing after the GPU time."""
    from retmask.config import ConfigError, load_config
    from tests.conftest import REPO
    from tests.helpers.helmet_checkout import cache_cite_nli_model, write_helmet_checkout

    checkout = write_helmet_checkout(tmp_path / "HELMET")
    llama = f"model.path={paper_inputs['llama']}"  # 131,072 positions: HELMET's lengths fit
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ConfigError) as error:
        load_config(REPO / "configs" / "tiny.yaml", [llama, f"helmet.path={checkout}"])
    assert str(error.value) == (
        "helmet.configs ['cite_short.yaml', 'cite.yaml'] run Cite, which HELMET scores with the NLI model "
        f"google/t5_xxl_true_nli_mixture, not in the Hugging Face cache {tmp_path / 'empty-cache'} the jobs read; fetch "
        "it once (about 45 GB) with `huggingface-cli download google/t5_xxl_true_nli_mixture` on a machine with "
        "network and that cache, or drop the cite configs")
    load_config(REPO / "configs" / "tiny.yaml", [llama, f"helmet.path={checkout}", "helmet.configs=[recall_short.yaml]",
                                                  "helmet.lengths=[8192]"])  # no Cite: no NLI model needed
    monkeypatch.setenv("HF_HUB_CACHE", str(cache_cite_nli_model(tmp_path / "cache")))
    assert load_config(REPO / "configs" / "tiny.yaml", [llama, f"helmet.path={checkout}"]).helmet.path == str(checkout)
