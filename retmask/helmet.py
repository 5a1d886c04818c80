"""Read HELMET result files and average them as HELMET does, but never silently over missing results.

Facts about princeton-nlp/HELMET this relies on (eval.py, eval_alce.py, scripts/collect_results.py,
scripts/eval_gpt4_longqa.py, scripts/eval_gpt4_summ.py, configs/*.yaml):

* eval.py writes, per (dataset, input length), into --output_dir the file
      <dataset>_<tag>_<test_name>_in<input_max_length>_size<max_test_samples>_shots<shots>
      _samp<do_sample>max<generation_max_length>min<generation_min_length>t<temperature>p<top_p>
      _chat<use_chat_template>_<seed>.json            (one name, wrapped here)
  where <test_name> is the test file's basename without extension (empty for ICL, LongQA and Summ,
  hence "..._v1__in8192_..."), and beside it "<name>.json.score": the flat averaged_metrics, already
  x100 (the *_len keys excepted).
* Cite (ALCE) gets its .json.score from eval_alce.py instead (str_em, citation_rec, citation_prec,
  qampari_rec_top5, ... already in 0-100).
* GPT-4-judged datasets get "<name without .json>-gpt4eval_o.json" (the whole output, averaged_metrics
  updated): narrativeqa "gpt-4-score" on 0-3, infbench_sum / multi_lexsum "gpt-4-f1" on 0-1.
  collect_results.py reads that file first, else the .score, else the raw .json's averaged_metrics,
  and rescales gpt-4-score by 100/3 and gpt-4-f1 by 100.
* The configs put length-specific suffixes in the dataset field (kilt_popqa_3, alce_asqa_30,
  icl_trec_coarse_400shot_balance, narrativeqa_7892, infbench_sum_eng_6792, multi_lexsum_7492), so the
  length is read from "_in<N>_" and the dataset from the start of the name.
* collect_results.py (custom_avgs): a category is the plain mean of its "dataset metric" columns (Cite
  averages all six ALCE columns, three per dataset) and the overall ("Ours") is the mean of the seven
  category means. It averages with pandas, which skips NaN: a missing file there just shrinks the
  average. Here it makes the average None, flags it incomplete and names what is missing.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from retmask.errors import UserError


class HelmetError(UserError):
    pass


@dataclass(frozen=True)
class DatasetSpec:
    name: str  # HELMET's short name (collect_results.py), e.g. "nq"
    in_file: str  # the dataset as HELMET's configs spell it in file names; <N> stands for digits
    metrics: tuple[str, ...]  # metric keys HELMET reads
    score_suffix: str = ".json.score"  # the file HELMET takes the metrics from

    @property
    def regex(self) -> str:
        return re.escape(self.in_file).replace("<N>", r"\d+")

    def expected(self, length: int, tag: str | None = None) -> str:
        """The glob of the file HELMET reads for this dataset at `length`."""
        return f"{self.in_file.replace('<N>', '*')}_{tag or '*'}_*_in{length}_*{self.score_suffix}"


_GPT4 = "-gpt4eval_o.json"
CATEGORIES: dict[str, tuple[DatasetSpec, ...]] = {
    "Recall": (DatasetSpec("json_kv", "json_kv", ("substring_exact_match",)),
               DatasetSpec("ruler_niah_mk_2", "ruler_niah_mk_2", ("ruler_recall",)),
               DatasetSpec("ruler_niah_mk_3", "ruler_niah_mk_3", ("ruler_recall",)),
               DatasetSpec("ruler_niah_mv", "ruler_niah_mv", ("ruler_recall",))),
    "RAG": (DatasetSpec("nq", "kilt_nq", ("substring_exact_match",)),
            DatasetSpec("triviaqa", "kilt_triviaqa", ("substring_exact_match",)),
            DatasetSpec("hotpotqa", "kilt_hotpotqa", ("substring_exact_match",)),
            DatasetSpec("popqa", "kilt_popqa_<N>", ("substring_exact_match",))),
    "Cite": (DatasetSpec("alce_asqa", "alce_asqa_<N>", ("str_em", "citation_rec", "citation_prec")),
             DatasetSpec("alce_qampari", "alce_qampari_<N>", ("qampari_rec_top5", "citation_rec", "citation_prec"))),
    "Re-rank": (DatasetSpec("msmarco_rerank_psg", "msmarco_rerank_psg", ("NDCG@10",)),),
    "ICL": tuple(DatasetSpec(n, f"icl_{n}_<N>shot_balance", ("exact_match",))
                 for n in ("trec_coarse", "trec_fine", "banking77", "clinic150", "nlu")),
    "LongQA": (DatasetSpec("narrativeqa", "narrativeqa_<N>", ("gpt-4-score",), _GPT4),
               DatasetSpec("infbench_qa", "infbench_qa_eng_<N>", ("rougeL_f1",)),
               DatasetSpec("infbench_choice", "infbench_choice_eng_<N>", ("exact_match",))),
    "Summ": (DatasetSpec("infbench_sum", "infbench_sum_eng_<N>", ("gpt-4-f1",), _GPT4),
             DatasetSpec("multi_lexsum", "multi_lexsum_<N>", ("gpt-4-f1",), _GPT4)),
}
DATASETS: dict[str, DatasetSpec] = {s.name: s for specs in CATEGORIES.values() for s in specs}

# Scoring the GPT-4-judged datasets by ROUGE instead, as the paper's pilot runs chose tau (Appendix A):
# the metrics eval.py already writes for them into .json.score (utils.calculate_metrics: rougeL and
# rougeLsum, f1 and recall, x100). ROUGE-L F1 for answers, as HELMET scores infbench_qa; ROUGE-Lsum F1
# for the multi-sentence summaries.
ROUGE_FOR_JUDGE = {"narrativeqa": "rougeL_f1", "infbench_sum": "rougeLsum_f1", "multi_lexsum": "rougeLsum_f1"}
SCORINGS = ("judge", "rouge")  # judge: HELMET's own metrics (collect_results.py); rouge: ROUGE_FOR_JUDGE


def categories_for(scoring: str) -> dict[str, tuple[DatasetSpec, ...]]:
    """The categories' datasets and metrics under `scoring` (SCORINGS)."""
    if scoring not in SCORINGS:
        raise HelmetError(f"scoring {scoring!r}: expected one of {', '.join(SCORINGS)}")
    if scoring == "judge":
        return CATEGORIES
    return {category: tuple(replace(spec, metrics=(ROUGE_FOR_JUDGE[spec.name],), score_suffix=".json.score")
                            if spec.name in ROUGE_FOR_JUDGE else spec for spec in specs)
            for category, specs in CATEGORIES.items()}


def _datasets_for(scoring: str) -> dict[str, DatasetSpec]:
    return {spec.name: spec for specs in categories_for(scoring).values() for spec in specs}
CATEGORY_OF: dict[str, str] = {s.name: c for c, specs in CATEGORIES.items() for s in specs}
_SCALE = {"gpt-4-score": 100 / 3, "gpt-4-f1": 100.0}  # collect_results.py's rescaling to 0-100
_HINT = {"gpt-4-score": "scripts/eval_gpt4_longqa.py writes it", "gpt-4-f1": "scripts/eval_gpt4_summ.py writes it",
         **dict.fromkeys(("str_em", "qampari_rec_top5", "citation_rec", "citation_prec"),
                         "eval_alce.py writes it into <name>.json.score")}

# <prefix = dataset_tag_testname>_in<N>_size.._shots.._samp..max..min..t..p.._chat.._<seed><kind>
_NAME = re.compile(r"^(?P<prefix>.+)_in(?P<length>\d+)_size\d+_shots\d+_samp(?:True|False)max\d+min\d+"
                   r"t[-+.\deE]+p[-+.\deE]+_chat(?:True|False)_\d+(?P<kind>-gpt4eval_o\.json|\.json\.score|\.json)$")
_PREFERENCE = ("-gpt4eval_o.json", ".json.score", ".json")  # the order collect_results.py tries


@dataclass(frozen=True)
class HelmetResult:
    """One metric of one (dataset, length); value on HELMET's 0-100 scale, None when it failed."""
    dataset: str
    length: int
    metric: str
    value: float | None
    path: Path  # the file read, or the pattern of the file that was expected
    error: str | None = None


@dataclass(frozen=True)
class Missing:
    dataset: str
    length: int
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.dataset} at length {self.length}: {self.reason} ({self.path})"


@dataclass
class Average:
    value: float | None  # None whenever anything it is made of is missing
    incomplete: bool = False
    missing: list[Missing] = field(default_factory=list)


@dataclass
class LengthAverages:
    length: int
    categories: dict[str, Average]
    overall: Average
    not_requested: list[str]  # HELMET datasets left out by the caller: overall is not HELMET's then


def _identify(path: Path) -> tuple[DatasetSpec, int, str, str]:
    """(spec, length, kind, run stem) from a HELMET file name; HelmetError if it is not one."""
    m = _NAME.match(path.name)
    if m:
        for spec in DATASETS.values():
            if re.match(rf"^{spec.regex}_", m["prefix"]):
                return spec, int(m["length"]), m["kind"], path.name[: -len(m["kind"])]
    raise HelmetError(f"{path.name}: not a HELMET result of a known dataset; expected "
                      f"<dataset>_<tag>_<test>_in<length>_size.._chat.._<seed>.json.score "
                      f"with a dataset among {', '.join(DATASETS)}")


def parse_score_file(path: str | Path, scoring: str = "judge") -> list[HelmetResult]:
    """The metrics HELMET takes from one result file (.json.score, -gpt4eval_o.json or raw .json);
    with scoring="rouge", ROUGE in place of a judged dataset's GPT-4 metric."""
    path = Path(path)
    identified, length, _, _ = _identify(path)
    spec = _datasets_for(scoring)[identified.name]
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise HelmetError(f"{path}: cannot read it as JSON ({exc}); rerun that HELMET task") from exc
    if isinstance(data, dict) and isinstance(data.get("averaged_metrics"), dict):
        data = data["averaged_metrics"]  # full outputs (raw .json, -gpt4eval_o.json) nest them
    if not isinstance(data, dict):
        raise HelmetError(f"{path}: expected a JSON object of metrics, found {type(data).__name__}")
    results = []
    for metric in spec.metrics:
        value = data.get(metric)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            hint = f"; {_HINT[metric]}" if metric in _HINT else ""
            raise HelmetError(f"{path}: metric {metric!r} missing or not a finite number "
                              f"(found {value!r}){hint}")
        results.append(HelmetResult(spec.name, length, metric, value * _SCALE.get(metric, 1.0), path))
    return results


def config_lengths(helmet_path: str | Path, config_file: str) -> set[int]:
    """The input lengths a HELMET config file runs its datasets at (its `input_max_length`, one
    per dataset, comma-separated): the *_short.yaml files 8K-64K, the others 128K."""
    import yaml

    path = Path(helmet_path).expanduser() / "configs" / config_file
    try:
        spec = yaml.safe_load(path.read_text())
        return {int(n) for n in str(spec["input_max_length"]).split(",") if n.strip()}
    except (OSError, yaml.YAMLError, TypeError, KeyError, ValueError) as exc:
        raise HelmetError(f"{path}: not a HELMET config with input_max_length ({exc}); name files of your "
                          f"checkout's configs/, e.g. recall_short.yaml (8K-64K) and recall.yaml (128K)") from exc


def config_categories(helmet_path: str | Path, config_file: str) -> dict[int, set[str]]:
    """Per input length, the categories of the datasets a HELMET config file runs: its comma-separated
    `datasets` paired with its `input_max_length` as eval.py pairs them (one length: every dataset)."""
    import yaml

    path = Path(helmet_path).expanduser() / "configs" / config_file
    try:
        spec = yaml.safe_load(path.read_text())
        names = [n.strip() for n in str(spec["datasets"]).split(",")]
        lengths = [int(n) for n in str(spec["input_max_length"]).split(",") if n.strip()]
    except (OSError, yaml.YAMLError, TypeError, KeyError, ValueError) as exc:
        raise HelmetError(f"{path}: not a HELMET config with datasets and input_max_length ({exc})") from exc
    lengths = lengths * len(names) if len(lengths) == 1 else lengths
    runs: dict[int, set[str]] = {}
    for name, length in zip(names, lengths):
        spec_of = next((s for s in DATASETS.values() if re.fullmatch(s.regex, name)), None)
        if spec_of is not None:
            runs.setdefault(length, set()).add(CATEGORY_OF[spec_of.name])
    return runs


def _checked_datasets(datasets: Iterable[str] | None) -> list[str]:
    names = list(DATASETS) if datasets is None else list(datasets)
    unknown = [n for n in names if n not in DATASETS]
    if unknown or not names:
        raise HelmetError(f"unknown HELMET dataset(s) {unknown or '(none given)'}; expected names among "
                          f"{', '.join(DATASETS)}")
    return names


def _checked_lengths(lengths: Iterable[int]) -> list[int]:
    lengths = list(lengths)
    if not lengths or any(isinstance(n, bool) or not isinstance(n, int) or n <= 0 for n in lengths):
        raise HelmetError(f"lengths {lengths!r}: expected positive input lengths, e.g. [8192, 16384]")
    return lengths


def find_results(output_dir: str | Path, lengths: Iterable[int], datasets: Iterable[str] | None = None,
                 tag: str | None = None, scoring: str = "judge", more_dirs: Iterable[Path] = ()) -> list[HelmetResult]:
    """Every metric HELMET reads for each expected (dataset, length) in `output_dir` (with
    scoring="rouge", ROUGE in place of the judged datasets' GPT-4 metrics); `more_dirs` hold more
    files of the same runs (the judge's "-gpt4eval_o.json", written apart from eval.py's outputs).

    A (dataset, length) that has no file, an unreadable one, lacks a metric, or has several runs
    (different tag/settings; pass `tag` to choose) comes back with value None and the reason.
    """
    root = Path(output_dir)
    if not root.is_dir():
        raise HelmetError(f"HELMET output directory {root} does not exist or is not a directory; expected "
                          f"the --output_dir of HELMET's eval.py, holding <dataset>_..._in<length>_...json.score")
    lengths, names = _checked_lengths(lengths), _checked_datasets(datasets)
    specs = _datasets_for(scoring)
    found: dict[tuple[str, int], dict[str, dict[str, Path]]] = {}  # (dataset, length) -> stem -> kind -> path
    for path in sorted(p for folder in (root, *more_dirs) if folder.is_dir() for p in folder.iterdir()):
        try:
            spec, length, kind, stem = _identify(path)
        except HelmetError:
            continue  # not a result file of a HELMET dataset (.batch, logs, other tasks)
        if tag is not None and not re.match(rf"^{spec.regex}_{re.escape(tag)}_", stem):
            continue
        found.setdefault((spec.name, length), {}).setdefault(stem, {})[kind] = path

    def failed(name: str, length: int, where: Path, reason: str) -> list[HelmetResult]:
        return [HelmetResult(name, length, m, None, where, reason) for m in specs[name].metrics]

    results: list[HelmetResult] = []
    for length in lengths:
        for name in names:
            runs = found.get((name, length), {})
            if not runs:
                results += failed(name, length, root / specs[name].expected(length, tag), "no result file")
            elif len(runs) > 1:
                results += failed(name, length, root, f"{len(runs)} runs ({', '.join(sorted(runs))}); "
                                  "pass tag= or remove the ones not meant")
            else:
                kinds = next(iter(runs.values()))
                # the file its metric is written to first (the judge's, or .json.score for ROUGE),
                # then in collect_results.py's order
                preference = (specs[name].score_suffix, *_PREFERENCE)
                path = next(kinds[k] for k in preference if k in kinds)
                try:
                    results += parse_score_file(path, scoring)
                except HelmetError as exc:
                    results += failed(name, length, path, str(exc))
    return results


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def category_averages(results: Iterable[HelmetResult], expected_datasets: Iterable[str] | None = None,
                      lengths: Iterable[int] | None = None, scoring: str = "judge") -> dict[int, LengthAverages]:
    """Per length: each category's mean over its (dataset, metric) values, and the mean of categories.

    Any expected value that is absent or failed makes its category and the overall None and incomplete,
    with the (dataset, length, path, reason) listed, instead of averaging over what is left.
    """
    results = list(results)
    names = _checked_datasets(expected_datasets)
    lengths = _checked_lengths(sorted({r.length for r in results}) if lengths is None else lengths)
    table: dict[tuple[str, int, str], HelmetResult] = {}
    for r in results:
        key = (r.dataset, r.length, r.metric)
        if key in table:
            raise HelmetError(f"two results for {r.dataset} {r.metric} at length {r.length} "
                              f"({table[key].path}, {r.path}); expected one per dataset, length and metric")
        table[key] = r
    out: dict[int, LengthAverages] = {}
    for length in lengths:
        categories: dict[str, Average] = {}
        for category, specs in categories_for(scoring).items():
            values: list[float] = []
            missing: dict[str, Missing] = {}  # one entry per dataset, even with several metrics
            for spec in (s for s in specs if s.name in names):
                for metric in spec.metrics:
                    r = table.get((spec.name, length, metric))
                    if r is not None and r.value is not None:
                        values.append(r.value)
                    elif spec.name not in missing:
                        missing[spec.name] = (Missing(spec.name, length, r.path, r.error or "failed") if r
                                              else Missing(spec.name, length, Path(spec.expected(length)),
                                                       "not among the results"))
            if values or missing:
                categories[category] = (Average(None, True, list(missing.values())) if missing
                                        else Average(_mean(values)))
        lost = [m for a in categories.values() for m in a.missing]
        overall = (Average(None, True, lost) if lost
                   else Average(_mean([a.value for a in categories.values() if a.value is not None])))
        out[length] = LengthAverages(length, categories, overall, [n for n in DATASETS if n not in names])
    return out


def averages_json(averages: dict[int, LengthAverages]) -> dict:
    """`category_averages`' result as json: {length: {categories, overall, not_requested}}, each
    average {value, incomplete, missing}; what the helmet_scores stage writes per model."""
    def average(a) -> dict:
        return {"value": a.value, "incomplete": a.incomplete, "missing": [str(m) for m in a.missing]}

    return {str(length): {"categories": {name: average(a) for name, a in entry.categories.items()},
                          "overall": average(entry.overall), "not_requested": list(entry.not_requested)}
            for length, entry in averages.items()}


CITE_NLI_MODEL = "google/t5_xxl_true_nli_mixture"  # eval_alce.py's AUTOAIS_MODEL, loaded from the hub by name


def _hub_cache() -> Path:
    """The Hugging Face cache eval_alce.py loads from, as huggingface_hub finds it."""
    import os

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def check_cite_nli_model(helmet_path: str | Path, config_files: Iterable[str]) -> None:
    """Cite is scored by eval_alce.py inside eval.py with an 11B NLI model fetched by name; offline
    compute nodes without it would lose Cite after the GPU time is spent (eval.py logs the error and
    goes on). Refused before any job when a config runs Cite and the model is not in the cache."""
    from huggingface_hub import try_to_load_from_cache

    cite = [f for f in config_files if any("Cite" in categories for categories in
                                           config_categories(helmet_path, f).values())]
    if not cite:
        return
    cache = _hub_cache()
    if isinstance(try_to_load_from_cache(CITE_NLI_MODEL, "config.json", cache_dir=str(cache)), str):
        return
    raise HelmetError(f"helmet.configs {cite} run Cite, which HELMET scores with the NLI model {CITE_NLI_MODEL}, not in "
                      f"the Hugging Face cache {cache} the jobs read; fetch it once (about 45 GB) with "
                      f"`huggingface-cli download {CITE_NLI_MODEL}` on a machine with network and that cache, or drop "
                      "the cite configs")

