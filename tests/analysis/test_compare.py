"""Cross-run comparison on minimal run directories built here (the files analysis.compare reads)."""
import csv
import json
from pathlib import Path

import pytest

from analysis.compare import write_comparison
from analysis.runs import (
    CompareError,
    NotARunError,
    read_helmet_averages,
)
from retmask.errors import UserError
from retmask.helmet import HelmetResult, averages_json, category_averages

HEADS = [f"{layer}-{head}" for layer in range(2) for head in range(4)]  # 8 heads


def _grid(cells: dict[tuple[int, float], float]) -> list[dict]:
    return [{"length": n, "depth": d, "accuracy": a} for (n, d), a in cells.items()]


def make_run(root: Path, *, strategy: str, model: str, tau: float, base: float, trained: float,
             trained_grid: dict, base_grid: dict, masked_delta: float, other_delta: float,
             scores: list[float], helmet: dict | None = None, helmet_file: str = "helmet_scores",
             general: dict | None = None) -> Path:
    def put(relative: str, data) -> None:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data if isinstance(data, str) else json.dumps(data))

    put("config.yaml", f"name: {root.name}\nstrategy: {strategy}\nmodel:\n  path: {model}\n  dtype: float32\n"
                       f"selection:\n  rule: threshold\n  tau: {tau}\n")
    put("manifest.json", {"stages": {}, "order": []})
    put("report/metrics.json", {"niah_accuracy": {"base": base, "trained": trained}})
    put("stages/evaluate/niah.json", [
        {"model": "base", "accuracy": base, "masked_heads": [], "grid": _grid(base_grid), "records": []},
        {"model": "ablated", "accuracy": 0.1, "masked_heads": HEADS[:2], "grid": [], "records": []},
        {"model": "random_control_0", "accuracy": 0.3, "masked_heads": HEADS[2:4], "grid": [], "records": []},
        {"model": "trained", "accuracy": trained, "masked_heads": [], "grid": _grid(trained_grid), "records": []},
    ])
    ranked = sorted(zip(HEADS, scores), key=lambda item: -item[1])
    masked = [name for name, _ in ranked[:2]]
    put("stages/evaluate/retrieval_change.json", {
        "mean_before": 0.2, "mean_after": 0.19, "masked_mean_delta": masked_delta, "other_mean_delta": other_delta,
        "per_head": {n: {"before": s, "after": s + (masked_delta if n in masked else other_delta),
                         "delta": masked_delta if n in masked else other_delta, "masked": n in masked}
                     for n, s in zip(HEADS, scores)}})
    put("stages/merge_scores/summary.json", {
        "instances": 10, "kept": 10, "ranked": [[n, s] for n, s in ranked],
        "concentration": {"gini": 0.5 if strategy == "retrieval-mask" else 0.6, "top10_share": 0.9,
                          "normalized_entropy": 0.7, "heads_at_or_above_tau": 2, "heads": len(HEADS)}})
    put("stages/select_heads/heads.json", {"strategy": strategy, "heads": masked, "count": 2,
                                           "retrieval_heads": masked})
    if helmet is not None:
        put(f"stages/{helmet_file}/averages.json", helmet)
    if general is not None:
        put("stages/general/results.json", general)
    return root


def _avg(value, incomplete=False, missing=()):
    return {"value": value, "incomplete": incomplete, "missing": list(missing)}


HELMET = {  # the shape jobs/stages/helmet.py's merge writes: per model, per length
    "base": {
        "8192": {"categories": {"Recall": _avg(50.0), "RAG": _avg(30.0)}, "overall": _avg(40.0)},
        "16384": {"categories": {"Recall": _avg(44.0), "RAG": _avg(None, True, ["nq at length 16384: no result file"])},
                  "overall": _avg(None, True, ["nq at length 16384: no result file"])},
    },
    "trained": {
        "8192": {"categories": {"Recall": _avg(60.25), "RAG": _avg(30.0)}, "overall": _avg(45.125)},
        "16384": {"categories": {"Recall": _avg(48.0), "RAG": _avg(28.0, True, ["hotpotqa at length 16384: failed"])},
                  "overall": _avg(38.0, True, ["hotpotqa at length 16384: failed"])},
    },
}


def two_runs(tmp_path: Path, helmet: dict | None = HELMET, general: dict | None = None) -> list[Path]:
    a = make_run(tmp_path / "runs" / "rm", strategy="retrieval-mask", model="/models/llama_8b", tau=0.1,
                 base=0.4, trained=0.5, base_grid={(1000, 0.0): 0.5, (1000, 50.0): 0.5, (2000, 0.0): 0.25,
                                                   (2000, 50.0): 0.25},
                 trained_grid={(1000, 0.0): 1.0, (1000, 50.0): 0.5, (2000, 0.0): 0.5, (2000, 50.0): 0.0},
                 masked_delta=-0.05, other_delta=0.01, scores=[0.9, 0.7, 0.2, 0.1, 0.05, 0.0, 0.0, 0.0],
                 helmet=helmet)
    b = make_run(tmp_path / "runs" / "rand", strategy="random-mask", model="/models/llama_8b", tau=0.1,
                 base=0.4, trained=0.45, base_grid={(1000, 0.0): 0.5, (2000, 0.0): 0.25},
                 trained_grid={(1000, 0.0): 0.8, (1000, 50.0): 0.6, (2000, 0.0): 0.2, (2000, 50.0): 0.4},
                 masked_delta=0.002, other_delta=0.003, scores=[0.9, 0.7, 0.2, 0.1, 0.05, 0.0, 0.0, 0.0],
                 general=general)
    return [a, b]


def _csv(path: Path) -> list[list[str]]:
    return list(csv.reader(path.read_text().splitlines()))


def test_helmet_table1_marks_incomplete_and_adds_base_rows(tmp_path):
    out = tmp_path / "cmp"
    index = write_comparison(two_runs(tmp_path), out)
    assert index == out / "index.md"
    text = index.read_text()
    assert "Table 1: HELMET overall average by context length" in text
    assert _csv(out / "table1.csv") == [
        ["run (model / strategy)", "8192", "16384"],
        ["llama_8b / base", "40.0", "incomplete"],
        ["llama_8b / retrieval-mask", "45.1", "38.0*"],
        ["llama_8b / random-mask", "-", "-"],
    ]
    assert "| llama_8b / retrieval-mask | 45.1 | 38.0* |" in text
    assert "| llama_8b / random-mask | - | - |" in text
    assert "hotpotqa at length 16384: failed" in text  # what the incomplete average lacks is named
    # Table 2 at the longest length of the run with HELMET results, categories in HELMET's order
    assert _csv(out / "table2.csv") == [
        ["run (model / strategy)", "Recall", "RAG", "Overall"],
        ["llama_8b / base", "44.0", "incomplete", "incomplete"],
        ["llama_8b / retrieval-mask", "48.0", "28.0*", "38.0*"],
    ]
    assert "Table 2: HELMET per category at length 16384" in text
    # NIAH base vs trained, and the concentration table with both gains
    niah = _csv(out / "niah_overall.csv")
    assert niah[1] == ["llama_8b / retrieval-mask", "0.400", "0.100", "0.300 (n=1)", "0.500", "+0.100"]
    assert niah[2][0] == "llama_8b / random-mask" and niah[2][4:] == ["0.450", "+0.050"]
    conc = _csv(out / "concentration_vs_gain.csv")
    assert conc[0][-1] == "HELMET gain at 16384"  # incomplete at 16384: never a number
    assert conc[1] == ["llama_8b / retrieval-mask", "0.500", "0.900", "0.700", "2", "+0.100", "incomplete or no base"]
    assert conc[2][1] == "0.600" and conc[2][5] == "+0.050"
    assert "NIAH accuracy gain" in text  # the figure falls back to NIAH: HELMET gains are not all complete
    for name in ("fig4_score_distribution.png", "fig5_retrieval_change.png", "concentration_vs_gain.png",
                 "fig5_run1_before_after.png", "fig5_run2_before_after.png"):
        assert (out / name).stat().st_size > 1000 and f"]({name})" in text
    fig5 = _csv(out / "fig5_retrieval_change.csv")
    assert fig5[1][3:5] == ["-0.0500", "+0.0100"] and fig5[2][3:5] == ["+0.0020", "+0.0030"]
    assert not list(out.glob("*.tex")) and not (out / "general.csv").exists()  # no LaTeX, no general results
    assert not list(out.glob(".*"))  # no temporary files left behind
    record = json.loads((out / "comparison.json").read_text())
    assert [r["niah_gain"] for r in record["runs"]] == pytest.approx([0.1, 0.05])
    assert record["table1"] == "helmet" and record["helmet_length"] == 16384


def test_niah_table1_when_no_run_has_helmet_latex_and_general(tmp_path):
    out = tmp_path / "cmp"
    runs = two_runs(tmp_path, helmet=None, general={"base": {"mmlu": 0.61, "gsm8k": 70.0},
                                                    "trained": {"mmlu": 0.6534, "gsm8k": 71.2}})
    text = write_comparison(runs, out, latex=True).read_text()
    assert "Table 1 (NIAH in place of HELMET): trained-model NIAH accuracy by context length" in text
    assert _csv(out / "table1.csv") == [
        ["run (model / strategy)", "1000", "2000"],
        ["llama_8b / base", "0.500", "0.250"],  # the base model, from the first run
        ["llama_8b / retrieval-mask", "0.750", "0.250"],
        ["llama_8b / random-mask", "0.700", "0.300"],
    ]
    assert "| llama_8b / random-mask | 0.700 | 0.300 |" in text
    assert "Table 2" not in text and not (out / "table2.csv").exists()
    assert _csv(out / "general.csv") == [["run (model / strategy)", "mmlu", "gsm8k"],
                                         ["llama_8b / base", "0.61", "70"],  # Table 5's before, then after
                                         ["llama_8b / random-mask", "0.6534", "71.2"]]
    assert "Table 5: general benchmarks, base vs trained" in text
    tex = (out / "table1.tex").read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"llama\_8b / random-mask & 0.700 & 0.300 \\" in tex
    for stem in ("runs", "niah_overall", "general", "fig4_models", "fig5_retrieval_change", "concentration_vs_gain"):
        assert (out / f"{stem}.tex").is_file() and f"({stem}.tex)" in text
    # a later call without LaTeX removes the .tex files of this one, and nothing it did not write
    (out / "notes.txt").write_text("mine")
    write_comparison(runs, out)
    assert not list(out.glob("*.tex")) and (out / "notes.txt").read_text() == "mine"


def test_helmet_file_of_one_model_from_the_parser(tmp_path):
    """stages/helmet_scores/averages.json in the one-model shape, made from retmask.helmet's averages."""
    results = [HelmetResult("json_kv", 8192, "substring_exact_match", 80.0, Path("x")),
               HelmetResult("nq", 8192, "substring_exact_match", None, Path("y"), "no result file")]
    shaped = averages_json(category_averages(results, expected_datasets=["json_kv", "nq"]))
    assert shaped["8192"]["overall"]["incomplete"] and shaped["8192"]["overall"]["value"] is None
    runs = two_runs(tmp_path, helmet=shaped)
    target = runs[0] / "stages/helmet_scores/averages.json"
    target.write_text(json.dumps(shaped))
    parsed = read_helmet_averages(target)
    assert set(parsed) == {"trained"} and parsed["trained"][8192].categories["Recall"].value == 80.0
    out = tmp_path / "cmp"
    text = write_comparison(runs, out).read_text()
    assert _csv(out / "table1.csv")[1] == ["llama_8b / retrieval-mask", "incomplete"]
    assert "nq at length 8192: no result file" in text
    assert _csv(out / "table2.csv")[1] == ["llama_8b / retrieval-mask", "80.0", "incomplete", "incomplete"]


def test_errors_name_the_path_and_what_is_missing(tmp_path):
    runs = two_runs(tmp_path)
    out = tmp_path / "cmp"
    with pytest.raises(NotARunError, match=r"nowhere.*does not exist"):
        write_comparison([runs[0], tmp_path / "nowhere"], out)
    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(NotARunError, match=rf"{bare}.*manifest\.json is missing"):
        write_comparison([bare], out)
    (runs[1] / "report" / "metrics.json").unlink()
    with pytest.raises(NotARunError, match=rf"{runs[1]}.*report/metrics\.json is missing"):
        write_comparison(runs, out)
    with pytest.raises(UserError, match="no run directories"):
        write_comparison([], out)
    with pytest.raises(CompareError, match="more than once"):
        write_comparison([runs[0], runs[0]], out)
    (runs[0] / "stages/helmet_scores/averages.json").write_text(json.dumps({"8192": {"overall": 45}}))
    with pytest.raises(CompareError, match=r"averages\.json.*overall: expected an average"):
        write_comparison([runs[0]], out)
    assert not out.exists()  # nothing written when a run cannot be read


def test_general_results_not_per_model_are_one_error(tmp_path):
    runs = two_runs(tmp_path, general={"mmlu": 0.6})  # scores, but not of the base and the trained model
    with pytest.raises(CompareError, match=r"general/results\.json: expected \{\"base\": \{\"<task>\""):
        write_comparison(runs, tmp_path / "cmp")


def test_gain_is_helmet_overall_when_every_run_has_complete_base_and_trained(tmp_path):
    complete = {"base": {"8192": {"categories": {"Recall": _avg(40.0)}, "overall": _avg(40.0)}},
                "trained": {"8192": {"categories": {"Recall": _avg(43.5)}, "overall": _avg(43.5)}}}
    runs = two_runs(tmp_path, helmet=complete)
    other = runs[1] / "stages/helmet_scores/averages.json"
    other.parent.mkdir(parents=True)
    other.write_text(json.dumps({**complete, "trained": {"8192": {"categories": {"Recall": _avg(39.0)},
                                                                  "overall": _avg(39.0)}}}))
    out = tmp_path / "cmp"
    text = write_comparison(runs, out).read_text()
    assert "Gain on the y axis: HELMET overall gain at 8192 (trained - base)." in text
    assert [row[-1] for row in _csv(out / "concentration_vs_gain.csv")[1:]] == ["+3.5", "-1.0"]
    assert [row[0] for row in _csv(out / "table1.csv")] == ["run (model / strategy)", "llama_8b / base",
                                                           "llama_8b / retrieval-mask", "llama_8b / random-mask"]


def test_rouge_in_place_of_the_judge_gives_tables_1_and_2_of_their_own(tmp_path):
    """A run with rouge_averages.json (LongQA and Summ by ROUGE, the paper's Tables 6, 9, 10) gets
    Table 1 and 2 again with those numbers, complete where the judge's are not."""
    judged = {"base": {"131072": {"categories": {"LongQA": _avg(None, True, ["narrativeqa at length 131072: missing"])},
                                  "overall": _avg(None, True, ["narrativeqa at length 131072: missing"])}},
              "trained": {"131072": {"categories": {"LongQA": _avg(None, True, ["narrativeqa: missing"])},
                                     "overall": _avg(None, True, ["narrativeqa: missing"])}}}
    rouge = {"base": {"131072": {"categories": {"LongQA": _avg(43.96)}, "overall": _avg(43.96)}},
             "trained": {"131072": {"categories": {"LongQA": _avg(46.57)}, "overall": _avg(46.57)}}}
    run = make_run(tmp_path / "qwen", strategy="retrieval-mask", model="/m/qwen3_8b", tau=0.05, base=0.4, trained=0.5,
                   trained_grid={(1000, 0.0): 1.0}, base_grid={(1000, 0.0): 1.0}, masked_delta=0.01,
                   other_delta=0.0, scores=[0.3, 0.2, 0.1, 0, 0, 0, 0, 0], helmet=judged)
    (run / "stages/helmet_scores/rouge_averages.json").write_text(json.dumps(rouge))
    out = tmp_path / "cmp"
    text = write_comparison([run], out).read_text()
    assert _csv(out / "table1.csv")[1:] == [["qwen3_8b / base", "incomplete"], ["qwen3_8b / retrieval-mask", "incomplete"]]
    assert _csv(out / "table2_rouge.csv")[1:] == [["qwen3_8b / base", "44.0", "44.0"],
                                                  ["qwen3_8b / retrieval-mask", "46.6", "46.6"]]
    assert "Table 1: HELMET overall average by context length (ROUGE in place of the GPT-4 judge" in text
    assert (out / "table1_rouge.csv").is_file()
