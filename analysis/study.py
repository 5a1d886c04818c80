"""The study report: Table 1 by length, Figures 4 and 5 in miniature, and the paper's claims C1-C6,
each with means and 95% intervals over seeds, a one-sided p-value, and a verdict computed from
them: "yes" only when the interval lies above 0 and the claim holds under Holm's correction across
the claims (C1, one value against random control draws, by its empirical rank among them).

Read from the study's files alone (`study.json` and its run directories), so it can be rewritten
at any time. Every number comes from the runs; a claim whose strategies did not run says so.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from analysis.health import run_health
from analysis.stats import ALPHA, Estimate, all_of, estimate, holm, rank_below, t_p_value, verdict
from retmask.errors import UserError
from retmask.io import read_json
from retmask.rundir import RunDir

BASE = "base (no training)"
RETMASK = "retrieval-mask"


class NothingToReport(UserError):
    """No run (of a variant) has finished its evaluation."""


@dataclass
class Claim:
    key: str
    statement: str
    evidence: list[str]  # one line per comparison: what minus what, its mean and interval
    verdict: str  # yes / no / inconclusive / not run
    p_value: float | None = None  # one-sided, the largest of its comparisons' (each must hold)


# (the difference's estimate, the evidence line, its one-sided p-value); None estimate: not run
Comparison = tuple[Estimate | None, str, float | None]


def run_label(entry: dict) -> str:
    """A plan entry's row in the report: its strategy, and its tau in a tau sweep."""
    return entry["strategy"] + (f" tau {entry['tau']:g}" if "tau" in entry else "")


def metric_value(record: dict, metric: str) -> float:
    return float(record["found"]) if metric == "accuracy" else float(record["rouge_recall"])


def by_length(records: list[dict], metric: str) -> dict[int, float]:
    cells = defaultdict(list)
    for record in records:
        cells[record["length"]].append(metric_value(record, metric))
    return {length: sum(v) / len(v) for length, v in sorted(cells.items())}


def band(records: list[dict], metric: str, long_from: int, long: bool) -> float:
    values = [metric_value(r, metric) for r in records if (r["length"] >= long_from) == long]
    if not values:
        side = "at or above" if long else "below"
        raise ValueError(f"no evaluation length {side} study.long_from={long_from}; set evaluation.niah_lengths to "
                         "span both bands")
    return sum(values) / len(values)


class StudyData:
    """What the report needs from a finished (or partly finished) study directory."""

    def __init__(self, study_dir: Path, variant: str | None = None):
        self.dir = Path(study_dir)
        self.plan = read_json(self.dir / "study.json")
        self.variant = variant
        self.entries = [e for e in self.plan["runs"] if e.get("variant") == variant]  # this variant's runs
        self.metric = self.plan["metric"]
        self.long_from = self.plan["long_from"]
        # a tau sweep reports each (strategy, tau) as a row of its own
        self.strategies = list(dict.fromkeys(run_label(e) for e in self.entries))
        self.seeds = self.plan["seeds"]
        self.trained: dict[str, dict[int, list[dict]]] = defaultdict(dict)  # strategy -> seed -> records
        self.change: dict[str, dict[int, dict]] = defaultdict(dict)  # strategy -> seed -> retrieval change
        self.missing: list[str] = []
        self.health: dict[str, dict[int, dict]] = defaultdict(dict)  # strategy -> seed -> Health.to_dict()
        self.untrained: list[dict] | None = None  # evaluate_base's niah.json
        self.scores_run: Path | None = None
        # A tau sweep's Table 6, and the tau the claims are measured at (the chosen one, as the paper
        # reports its results at the tau its pilots chose)
        self.tau_rows, self.chosen_tau, self.tau_chosen_on = [], None, "these seeds"
        if self.plan.get("taus"):
            from analysis.tau import chosen_tau, tau_table

            self.tau_rows = tau_table([e for e in self.entries if e["strategy"] == RETMASK],
                                      self.plan["tau_metric"], self.long_from, self.plan["tau_helmet_categories"])
            self.chosen_tau = chosen_tau(self.tau_rows)
            # claims on report seeds are measured at the tau the development seeds chose, when they ran
            developed = development_tau(self.dir, variant) if not self.plan.get("development") else None
            if developed is not None:
                self.chosen_tau, self.tau_chosen_on = developed, "the development seeds"
        # the untrained models (ablation, controls: sized by the heads tau selects) of the chosen tau first
        for entry in sorted(self.entries, key=lambda e: e.get("tau") != self.chosen_tau):
            run = Path(entry["run_dir"])
            niah = run / "stages/evaluate/niah.json"
            name = run_label(entry)
            if not niah.is_file():
                self.missing.append(f"{name} seed {entry['seed']}")
                continue
            entries = read_json(niah)
            trained = next(e for e in entries if e["model"] == "trained")
            if self.untrained is None:  # the same in every run: evaluate_base is shared
                self.untrained = [e for e in entries if e["model"] != "trained"]
                self.scores_run = run
            self.trained[name][entry["seed"]] = trained["records"]
            self.change[name][entry["seed"]] = read_json(run / "stages/evaluate/retrieval_change.json")
            self.health[name][entry["seed"]] = run_health(RunDir(run)).to_dict()
        if self.untrained is None:
            where = f" of variant {variant}" if variant is not None else ""
            raise NothingToReport(f"{self.dir}: no run{where} finished its evaluation; nothing to report yet")

    def label(self, strategy: str) -> str:
        """The row a claim reads for `strategy`: in a tau sweep, its runs at the chosen tau."""
        return strategy if self.chosen_tau is None else f"{strategy} tau {self.chosen_tau:g}"

    def untrained_records(self, prefix: str) -> list[list[dict]]:
        """Records of each untrained entry whose name is `prefix` or starts with `prefix_`."""
        return [e["records"] for e in self.untrained if e["model"] == prefix or e["model"].startswith(prefix + "_")]

    def lengths(self) -> list[int]:
        return sorted({r["length"] for r in self.untrained_records("base")[0]})

    def concentration(self) -> dict:
        if self.scores_run is None:
            return {}
        return read_json(self.scores_run / "stages/merge_scores/summary.json").get("concentration", {})

    def not_learned_note(self, *strategies: str) -> str:
        """A caveat naming the runs of these strategies whose training learned nothing (their model
        is about the base model: the comparison measures the strategy's failure to train)."""
        failed = [f"{name} seed {seed}" for name in strategies for seed, h in sorted(self.health.get(name, {}).items())
                  if not h["learned"]]
        return f" (did not learn: {', '.join(failed)})" if failed else ""

    def long_values(self, strategy: str, metric: str | None = None) -> dict[int, float]:
        metric = metric or self.metric
        return {seed: band(records, metric, self.long_from, True) for seed, records in self.trained[strategy].items()}


def development_tau(study_dir: Path, variant: str | None) -> float | None:
    """The tau `retmask study --development` chose (study_dir/development's report), if it ran."""
    path = Path(study_dir) / "development" / "report" / "study_results.json"
    if not path.is_file():
        return None
    results = read_json(path)
    numbers = results.get("variants", {}).get(variant) if variant is not None else results
    return ((numbers or {}).get("tau") or {}).get("chosen")


def _over_seeds(differences: list[float], line: str) -> Comparison:
    """A comparison over seeds: the interval of the differences and Student's t p-value."""
    diff, p = estimate(differences), t_p_value(differences)
    return diff, line.format(diff=diff.text()) + (f", p = {p:.3g}" if p is not None else ""), p


def _paired(data: StudyData, better: str, worse: str) -> Comparison:
    """better - worse in the long band, paired by seed (same seed: same chosen samples)."""
    a, b = data.long_values(better), data.long_values(worse)
    seeds = sorted(a.keys() & b.keys())
    if not seeds:
        return None, f"{better} - {worse}: not run", None
    return _over_seeds([a[s] - b[s] for s in seeds], f"{better} - {worse}, {data.metric} at lengths >= "
                       f"{data.long_from}: {{diff}} over seeds {seeds}" + data.not_learned_note(better, worse))


def _claim_from(key: str, statement: str, comparisons: list[Comparison]) -> Claim:
    lines = [line for _, line, _ in comparisons]
    if any(diff is None for diff, _, _ in comparisons):
        return Claim(key, statement, lines, "not run")
    p_values = [p for _, _, p in comparisons]
    return Claim(key, statement, lines, all_of([verdict(diff) for diff, _, _ in comparisons]),
                 None if None in p_values else max(p_values))


def corrected(found: list[Claim], alpha: float = ALPHA) -> list[Claim]:
    """Holm's correction across the claims: a "yes" whose p-value does not hold at family-wise
    `alpha` becomes inconclusive, and each tested claim says where it stands."""
    held = holm({c.key: c.p_value for c in found}, alpha)
    tested = sum(c.p_value is not None for c in found)
    for c in found:
        if c.p_value is None:
            continue
        c.evidence.append(f"one-sided p = {c.p_value:.3g}; Holm over {tested} claims at {alpha:g}: "
                          + ("holds" if held[c.key] else "does not hold"))
        if c.verdict == "yes" and not held[c.key]:
            c.verdict = "inconclusive"
    return found


def claims(data: StudyData) -> list[Claim]:
    metric, long_from = data.metric, data.long_from
    result = []

    # C1: on the short lengths the base model handles, ablating the retrieval heads against
    # control masks of the same size; the interval is over the control draws.
    ablated = band(data.untrained_records("ablated")[0], metric, long_from, False)
    c1 = []
    for name, prefix in (("random heads", "random_any_control"), ("non-retrieval heads", "random_control")):
        draws = data.untrained_records(prefix)
        if not draws:
            c1.append((None, f"masks of {name}: not evaluated (evaluation.control_rules)", None))
            continue
        values = [band(records, metric, long_from, False) for records in draws]
        diff, rank = estimate([v - ablated for v in values]), rank_below(ablated, values)
        # one value against k draws: its rank among them is the test (the interval is the draws' spread)
        c1.append((diff, f"masking {name} - masking retrieval heads, {metric} at lengths < {long_from}: "
                         f"{diff.text()} over {len(draws)} draws (retrieval-ablated {ablated:.3f}, below "
                         f"{rank.beats} of {rank.draws} draws: empirical p = {rank.p_value:.3g})", rank.p_value))
    result.append(_claim_from("C1", "ablating retrieval heads hurts NIAH more than masking as many random or "
                                    "non-retrieval heads", c1))

    base_long = band(data.untrained_records("base")[0], metric, long_from, True)
    retmask = data.label(RETMASK)
    mine = data.long_values(retmask)
    c2 = [(None, f"{retmask}: not run", None)]
    if mine:
        c2 = [_over_seeds([v - base_long for v in mine.values()], f"{retmask} - base, {metric} at lengths >= "
                          f"{long_from}: {{diff}} over seeds {sorted(mine)} (base {base_long:.3f})"
                          + data.not_learned_note(retmask))]
    result.append(_claim_from("C2", "RetMask DPO on short prompts raises accuracy at long lengths over the base", c2))

    result.append(_claim_from("C3", "RetMask beats random-mask and non-retrieval-mask DPO (Table 1)",
                              [_paired(data, retmask, data.label("random-mask")),
                               _paired(data, retmask, data.label("non-retrieval-mask"))]))

    changes = data.change.get(retmask, {})
    c4 = [(None, f"{retmask}: not run", None)]
    if changes:
        before = [v["before"] for c in changes.values() for v in c["per_head"].values() if v["masked"]]
        ceiling = f"; the masked heads scored {sum(before) / len(before):.3f} before" if before else ""
        c4 = [_over_seeds([c["masked_mean_delta"] - c["other_mean_delta"] for c in changes.values()],
                          f"masked heads' retrieval-score change - other heads', after {retmask}: {{diff}} over "
                          f"seeds {sorted(changes)}{ceiling}")]
    result.append(_claim_from("C4", "masked heads' retrieval scores rise after RetMask more than the other heads' "
                                    "(Figure 5)", c4))
    result.append(_claim_from("C5", "SFT on the chosen responses alone does not match RetMask (Appendix C)",
                              [_paired(data, retmask, data.label("sft"))]))
    result.append(_claim_from("C6", "win-lose pairs ranked by a judge do not match RetMask",
                              [_paired(data, retmask, data.label("win-lose-pair"))]))
    return corrected(result)


def table_by_length(data: StudyData, metric: str) -> tuple[list[str], list[list[str]], dict]:
    """Rows: base, then each strategy; columns: each length and the long band, mean [95% interval]."""
    lengths = data.lengths()
    header = ["model", *[str(length) for length in lengths], f">= {data.long_from}"]
    base = data.untrained_records("base")[0]
    base_by = by_length(base, metric)
    rows = [[BASE, *[f"{base_by[length]:.3f}" for length in lengths], f"{band(base, metric, data.long_from, True):.3f}"]]
    numbers = {BASE: {"by_length": base_by, "long": band(base, metric, data.long_from, True)}}
    for strategy in data.strategies:
        seeds = data.trained.get(strategy, {})
        if not seeds:
            rows.append([strategy, *["not run"] * (len(lengths) + 1)])
            continue
        per_length = {length: estimate([by_length(r, metric)[length] for r in seeds.values()]) for length in lengths}
        long = estimate(list(data.long_values(strategy, metric).values()))
        rows.append([strategy, *[per_length[length].text() for length in lengths], long.text()])
        numbers[strategy] = {"by_length": {k: vars(v) for k, v in per_length.items()}, "long": vars(long)}
    return header, rows, numbers
