"""Table 6 from run directories written by hand: the proxy per tau and seed, the chosen tau (ties to
the smaller), unfinished runs left out, and runs whose proxy is not computed (their HELMET stage
failed or has not run) left out of the means with the reason, so a part-finished sweep still reports."""
import re

from analysis.tau import chosen_tau, tau_markdown, tau_table
from retmask.io import write_json

CATEGORIES = ["Recall", "RAG"]


def _run(root, tau, seed, long_recall, heads, helmet=None):
    run = root / f"retrieval-mask-tau{tau:g}-seed{seed}"
    records = [{"length": length, "rouge_recall": recall, "found": recall >= 0.5}
               for length, recall in ((32, 1.0), (128, long_recall))]
    write_json(run / "stages/evaluate/niah.json", [{"model": "base", "records": records},
                                                   {"model": "trained", "records": records}])
    write_json(run / "stages/select_heads/heads.json", {"heads": [f"3-{h}" for h in range(heads)]})
    if helmet is not None:
        write_json(run / "stages/helmet_scores/averages.json", {"trained": helmet})
    return {"strategy": "retrieval-mask", "tau": tau, "seed": seed, "run_dir": str(run)}


def test_ties_go_to_the_smaller_tau_and_unfinished_runs_are_left_out(tmp_path):
    runs = [_run(tmp_path, 0.1, 1, 0.6, 40), _run(tmp_path, 0.1, 2, 0.4, 40),
            _run(tmp_path, 0.05, 1, 0.5, 79), _run(tmp_path, 0.05, 2, 0.5, 79),
            {"strategy": "retrieval-mask", "tau": 0.2, "seed": 1, "run_dir": str(tmp_path / "never-ran")}]
    rows = tau_table(runs, "niah_rouge_recall", 96, CATEGORIES)
    assert [(r.tau, r.heads, r.values) for r in rows] == [(0.05, {1: 79, 2: 79}, {1: 0.5, 2: 0.5}),
                                                          (0.1, {1: 40, 2: 40}, {1: 0.6, 2: 0.4}), (0.2, {}, {})]
    assert chosen_tau(rows) == 0.05  # 0.5 against 0.5: the smaller tau
    assert tau_table(runs[:2], "niah_accuracy", 96, CATEGORIES)[0].values == {1: 1.0, 2: 0.0}
    table = tau_markdown(rows, "niah_rouge_recall", [1, 2])
    assert table[2] == "| 0.05 | 79 | 0.500 | 0.500 | 0.500 | chosen |"
    assert table[4] == "| 0.2 | not run | not run | not run | not run |  |"


def _helmet(recall, rag):
    return {str(length): {"categories": {"Recall": {"value": recall, "incomplete": False, "missing": []},
                                         "RAG": {"value": rag, "incomplete": rag is None,
                                                 "missing": [] if rag is not None else ["nq at length 8192: no file"]}},
                          "overall": {"value": None, "incomplete": True, "missing": []}}
            for length in (8192, 16384)}


def test_the_helmet_proxy_averages_the_named_categories_and_leaves_out_a_run_without_them(tmp_path):
    runs = [_run(tmp_path, 0.05, 1, 0.5, 79, _helmet(60.0, 40.0)), _run(tmp_path, 0.1, 1, 0.5, 40, _helmet(70.0, 40.0))]
    rows = tau_table(runs, "helmet", 96, CATEGORIES)
    assert [r.values for r in rows] == [{1: 50.0}, {1: 55.0}] and chosen_tau(rows) == 0.1
    # seed 2 of tau 0.1 lacks a category, and seed 2 of tau 0.05 its HELMET scores (its HELMET stage failed):
    # left out of the means, with the reason, not a report that cannot be written
    runs += [_run(tmp_path, 0.1, 2, 0.5, 40, _helmet(10.0, None)), _run(tmp_path, 0.05, 2, 0.5, 79)]
    rows = tau_table(runs, "helmet", 96, CATEGORIES)
    assert [(r.values, list(r.unscored)) for r in rows] == [({1: 50.0}, [2]), ({1: 55.0}, [2])]
    assert chosen_tau(rows) == 0.1
    assert rows[0].unscored[2].startswith("no stages/helmet_scores/averages.json: its HELMET stages have not finished")
    assert re.match(r"HELMET RAG at length \d+ has no score \(nq at length 8192: no file\)", rows[1].unscored[2])
    table = tau_markdown(rows, "helmet", [1, 2])
    assert table[2] == "| 0.05 | 79 | 50.000 | 50.000 | not scored |  |"
    assert table[5:7] == ["Not scored (left out of the means):", f"- tau 0.05 seed 2: {rows[0].unscored[2]}"]


def test_the_helmet_rouge_proxy_reads_the_rouge_averages(tmp_path):
    """helmet_rouge (the paper's pilots: ROUGE in place of the GPT-4 judge) reads rouge_averages.json,
    not HELMET's own averages."""
    runs = [_run(tmp_path, 0.05, 1, 0.5, 79, _helmet(60.0, 40.0)), _run(tmp_path, 0.1, 1, 0.5, 40, _helmet(70.0, 40.0))]
    for entry, rouge in zip(runs, (_helmet(90.0, 80.0), _helmet(10.0, 20.0))):
        write_json(tmp_path / entry["run_dir"] / "stages/helmet_scores/rouge_averages.json", {"trained": rouge})
    rows = tau_table(runs, "helmet_rouge", 96, CATEGORIES)
    assert [r.values for r in rows] == [{1: 85.0}, {1: 15.0}] and chosen_tau(rows) == 0.05
    # HELMET's own averages without the ROUGE ones: not scored on helmet_rouge
    lone = tau_table([_run(tmp_path / "bare", 0.05, 1, 0.5, 79, _helmet(60.0, 40.0))], "helmet_rouge", 96, CATEGORIES)
    assert lone[0].unscored[1].startswith("no stages/helmet_scores/rouge_averages.json") and chosen_tau(lone) is None
