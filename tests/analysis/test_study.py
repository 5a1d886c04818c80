"""The study report from run directories written by hand, whose verdicts are known: the claims
are computed from the files, and a strategy that did not run is said not to have run."""
from pathlib import Path

from analysis.study_report import summary_lines, write_study_report
from retmask.io import read_json, write_json, write_jsonl

LENGTHS = (32, 64, 96, 128)  # long band: 96 and 128


def _records(recall_by_length: dict[int, float]) -> list[dict]:
    """Two records per length whose ROUGE recall averages to the given value; found when >= 0.5."""
    records = []
    for length, recall in recall_by_length.items():
        for delta in (-0.05, 0.05):
            value = min(1.0, max(0.0, recall + delta))
            records.append({"length": length, "rouge_recall": value, "found": value >= 0.5})
    return records


def _entry(model: str, recall: dict[int, float]) -> dict:
    return {"model": model, "records": _records(recall), "masked_heads": [], "grid": [], "accuracy": 0.0}


def _flat(short: float, long: float) -> dict[int, float]:
    return {length: (short if length < 96 else long) for length in LENGTHS}


def _write_run(root: Path, strategy: str, seed: int, long_recall: float, masked_delta: float) -> dict:
    run = root / f"{strategy}-seed{seed}"
    untrained = [_entry("base", _flat(0.95, 0.40)), _entry("ablated", _flat(0.10, 0.05))]
    untrained += [_entry(f"random_control_{i}", _flat(0.85 + 0.02 * i, 0.4)) for i in range(3)]
    untrained += [_entry(f"random_any_control_{i}", _flat(0.60 + 0.05 * i, 0.3)) for i in range(3)]
    write_json(run / "stages/evaluate/niah.json", untrained + [_entry("trained", _flat(0.95, long_recall))])
    write_json(run / "stages/evaluate/retrieval_change.json",
               {"masked_mean_delta": masked_delta, "other_mean_delta": 0.0, "per_head": {}})
    write_json(run / "stages/merge_scores/summary.json", {"ranked": [["L3-H1", 0.9], ["L0-H0", 0.1]]})
    write_json(run / "stages/select_heads/heads.json", {"heads": ["L3-H1"], "retrieval_heads": ["L3-H1"]})
    (run / "config.yaml").write_text("name: x\nselection:\n  tau: 0.5\n")
    learned = strategy != "sft"  # a run whose margins stayed flat: its training learned nothing
    write_json(run / "stages/pairs/statistics.json", {"prompts": 128, "pairs": 128})
    write_json(run / "stages/train/summary.json", {"trainer": "dpo", "global_step": 8})
    write_jsonl(run / "stages/train/train_log.jsonl",
                [{"step": step, "loss": 0.69, "rewards/margins": 0.1 * step * learned,
                  "rewards/accuracies": 1.0 if learned else 0.5} for step in range(1, 9)])
    return {"strategy": strategy, "seed": seed, "run_dir": str(run)}


def _study(tmp_path: Path, long_recall: dict[str, list[float]], strategies: list[str]) -> Path:
    runs = []
    for strategy, values in long_recall.items():
        for seed, value in zip((1, 2, 3), values):
            runs.append(_write_run(tmp_path / "runs", strategy, seed, value, 0.2 + 0.01 * seed))
    write_json(tmp_path / "study.json", {"name": "hand", "development": False, "seeds": [1, 2, 3],
                                         "strategies": strategies, "long_from": 96, "metric": "rouge_recall",
                                         "runs": runs})
    return tmp_path


def _verdicts(study: Path) -> dict[str, str]:
    write_study_report(study)
    return {c["key"]: c["verdict"] for c in read_json(study / "report/study_results.json")["claims"]}


def test_clear_gains_answer_yes_and_missing_strategies_say_not_run(tmp_path):
    study = _study(tmp_path, {"retrieval-mask": [0.60, 0.62, 0.61], "random-mask": [0.45, 0.44, 0.46],
                              "non-retrieval-mask": [0.41, 0.43, 0.42], "sft": [0.40, 0.39, 0.41]},
                   ["retrieval-mask", "random-mask", "non-retrieval-mask", "sft", "win-lose-pair"])
    verdicts = _verdicts(study)
    # C1: ablation 0.10 vs non-retrieval 0.85-0.89 and random 0.60-0.70 in the short band: below
    # every one of the 3 draws, yet one value against 3 draws has p 1/4 at best, which no correction
    # across five claims lets hold (the interval alone said yes)
    assert verdicts == {"C1": "inconclusive", "C2": "yes", "C3": "yes", "C4": "yes", "C5": "yes", "C6": "not run"}
    claims = {c["key"]: c for c in read_json(study / "report/study_results.json")["claims"]}
    assert "below 3 of 3 draws: empirical p = 0.25" in claims["C1"]["evidence"][0]
    assert claims["C1"]["evidence"][-1] == "one-sided p = 0.25; Holm over 5 claims at 0.05: does not hold"
    assert claims["C2"]["evidence"][-1].endswith("Holm over 5 claims at 0.05: holds")
    index = (study / "report/index.md").read_text()
    assert "| retrieval-mask | " in index and "0.610 [" in index  # the long-band mean over seeds 1-3
    assert (study / "report/table1_by_length.png").is_file() and (study / "report/figure5_retrieval_change.png").is_file()
    c5 = next(c for c in read_json(study / "report/study_results.json")["claims"] if c["key"] == "C5")
    assert "(did not learn: sft seed 1, sft seed 2, sft seed 3)" in c5["evidence"][0]
    assert "| sft | 2 | " in index and "did NOT learn" in index
    lines = summary_lines(study)
    assert any(line.startswith("C6 not run") for line in lines)


def test_no_difference_is_inconclusive_and_a_loss_is_no(tmp_path):
    study = _study(tmp_path, {"retrieval-mask": [0.41, 0.38, 0.40], "random-mask": [0.50, 0.52, 0.51],
                              "non-retrieval-mask": [0.42, 0.37, 0.41]},
                   ["retrieval-mask", "random-mask", "non-retrieval-mask"])
    verdicts = _verdicts(study)
    assert verdicts["C2"] == "inconclusive"  # 0.41, 0.38, 0.40 around the base's 0.40
    assert verdicts["C3"] == "no"  # random-mask beats it on every seed


def _tau_study(tmp_path: Path) -> Path:
    runs = []
    for tau, long in ((0.05, 0.50), (0.1, 0.60)):
        for seed in (1, 2, 3):
            entry = _write_run(tmp_path / "runs" / f"tau{tau}", "retrieval-mask", seed, long + 0.01 * seed, 0.2)
            runs.append({**entry, "tau": tau})
    write_json(tmp_path / "study.json", {"name": "hand", "development": False, "seeds": [1, 2, 3],
                                         "strategies": ["retrieval-mask"], "long_from": 96, "metric": "rouge_recall",
                                         "taus": [0.05, 0.1], "tau_metric": "niah_rouge_recall",
                                         "tau_helmet_categories": [], "runs": runs})
    return tmp_path


def test_tau_is_taken_from_the_development_seeds_when_they_ran(tmp_path):
    """On these seeds tau 0.1 scores higher; the development study chose 0.05, so the claims are
    measured at 0.05, and the report says where tau was chosen."""
    study = _tau_study(tmp_path / "alone")
    write_study_report(study)
    tau = read_json(study / "report/study_results.json")["tau"]
    assert (tau["chosen"], tau["chosen_on"]) == (0.1, "these seeds")
    assert "chosen on these same seeds" in (study / "report/index.md").read_text()

    study = _tau_study(tmp_path / "developed")
    write_json(study / "development/report/study_results.json", {"tau": {"chosen": 0.05}, "claims": []})
    write_study_report(study)
    results = read_json(study / "report/study_results.json")
    assert (results["tau"]["chosen"], results["tau"]["chosen_on"]) == (0.05, "the development seeds")
    c2 = next(c for c in results["claims"] if c["key"] == "C2")
    assert c2["evidence"][0].startswith("retrieval-mask tau 0.05 - base")


def test_a_sweep_whose_helmet_stages_failed_still_reports_what_finished(tmp_path):
    """tau chosen on HELMET, and one tau's runs have no HELMET scores (their HELMET stage failed, as a
    full disk once made it): the report is written, that tau's runs are said not scored and why,
    and the tau chosen among those scored."""
    study = _tau_study(tmp_path)
    plan = read_json(study / "study.json")
    write_json(study / "study.json", {**plan, "tau_metric": "helmet_rouge", "tau_helmet_categories": ["Recall"]})
    for entry in plan["runs"]:
        if entry["tau"] == 0.1:
            scores = {"8192": {"categories": {"Recall": {"value": 50.0 + entry["seed"], "incomplete": False,
                                                         "missing": []}}}}
            write_json(Path(entry["run_dir"]) / "stages/helmet_scores/rouge_averages.json", {"trained": scores})
    write_study_report(study)
    tau = read_json(study / "report/study_results.json")["tau"]
    assert tau["chosen"] == 0.1 and [row["values"] for row in tau["rows"]] == [{}, {"1": 51.0, "2": 52.0, "3": 53.0}]
    assert sorted(tau["rows"][0]["unscored"]) == ["1", "2", "3"]
    index = (study / "report/index.md").read_text()
    assert "| 0.05 | 1 | not run | not scored | not scored | not scored |  |" in index
    assert "- tau 0.05 seed 1: no stages/helmet_scores/rouge_averages.json: its HELMET stages have not finished" in index

    # none scored: no tau chosen, and still a report
    for entry in plan["runs"]:
        (Path(entry["run_dir"]) / "stages/helmet_scores/rouge_averages.json").unlink(missing_ok=True)
    write_study_report(study)
    assert read_json(study / "report/study_results.json")["tau"]["chosen"] is None
