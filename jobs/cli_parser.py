"""The `retmask` command line: each subcommand's arguments (jobs/cli.py runs them)."""
from __future__ import annotations

import argparse

from retmask.niah import DEFAULT_TEMPLATE


def _add_cluster_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    where = "profile name in slurm_templates/ or a path to yours"
    parser.add_argument("--cluster", required=required, help=where if required else f"submit to a cluster: {where}")
    parser.add_argument("--profile-set", action="append", metavar="KEY=VALUE", help="override a profile key")
    parser.add_argument("--dry-run", action="store_true", help="print the job graph and every job script; submit nothing")
    parser.add_argument("--force", action="store_true", help="move outputs of another config aside and redo them")


def _add_rehearse(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rehearse", action="store_true",
                        help="run it all on tiny random twins of its models with every workload cut to a handful, "
                             "into <dir>-rehearsal: minutes on CPU, the same stages and job graph, numbers that mean "
                             "nothing (checkpoints need only their config and tokenizer files)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="retmask", description="RetMask: retrieval-head masking for DPO")
    sub = parser.add_subparsers(dest="command", required=True)

    toy = sub.add_parser("toy-model", help="train the toy model with retrieval heads into OUT_DIR")
    toy.add_argument("out_dir")
    toy.add_argument("--seed", type=int, default=0)
    toy.add_argument("--steps", type=int, default=0, help="training steps (default: the recipe's)")

    run = sub.add_parser("run", help="run every stage of an experiment on this machine")
    run.add_argument("config")
    run.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config key")
    run.add_argument("--run-dir", help="run directory (default: the config's run_dir, else runs/<name>)")
    run.add_argument("--max-parallel", type=int, default=0, help="processes at once (default: the profile's)")
    run.add_argument("--until", metavar="STAGE", help="run only this stage and the stages it depends on")
    run.add_argument("--progress-every", type=float, default=30.0, metavar="SECONDS",
                     help="when not on a terminal, print progress lines this often (default 30)")
    _add_rehearse(run)

    study = sub.add_parser("study", help="run a strategy x seed grid, here or on a cluster, sharing what "
                           "its runs have in common, and report the paper's claims with intervals and verdicts")
    study.add_argument("configs", nargs="+", metavar="config",
                       help="an experiment config with a `study` section (e.g. configs/toy-study.yaml); several "
                            "run together, each stage they have in common computed once (configs/paper/*.yaml)")
    study.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a key (study.* too)")
    study.add_argument("--dir", help="study directory (default: runs/<name>; one study only)")
    study.add_argument("--development", action="store_true",
                       help="run the development seeds (where hyper-parameters are chosen) instead of the report's")
    _add_cluster_arguments(study, required=False)  # rerun with --cluster: resubmits what failed, reports when done
    _add_rehearse(study)

    submit = sub.add_parser("submit", help="submit every stage to a cluster (SLURM, Grid Engine, PBS): arrays + dependencies")
    submit.add_argument("config")
    _add_cluster_arguments(submit, required=True)
    submit.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config key")
    submit.add_argument("--run-dir")
    submit.add_argument("--until", metavar="STAGE", help="submit only this stage and the stages it depends on")
    _add_rehearse(submit)

    plan = sub.add_parser("plan", help="work, tasks, GPUs and, from a pilot run's rates, GPU-hours and wall-clock "
                          "per job, before anything is queued")
    plan.add_argument("config")
    plan.add_argument("--cluster", required=True, metavar="PROFILE", help="a profile name or YAML file")
    plan.add_argument("--profile-set", action="append", metavar="KEY=VALUE", help="override a profile key")
    plan.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config key")
    plan.add_argument("--pilot", metavar="RUN", help="a small run of this experiment on this cluster, whose shards' "
                      "rates the plan scales up")

    status = sub.add_parser("status", help="shards done/running/pending/failed per stage of a run (of a study: "
                            "each run's state)")
    status.add_argument("run", help="a run directory, or a study directory (one line per run)")
    status.add_argument("--disk-only", action="store_true", help="do not ask the scheduler")
    status.add_argument("--watch", action="store_true",
                        help="refresh until nothing runs, with rate and ETA per stage (one scheduler query each time)")
    status.add_argument("--interval", type=float, default=30.0, metavar="SECONDS",
                        help="seconds between refreshes with --watch (default 30)")

    resume = sub.add_parser("resume", help="resubmit only failed or missing shards and unfinished stages")
    resume.add_argument("run")
    resume.add_argument("--cluster", help="profile to use (default: the one the run was submitted with)")
    resume.add_argument("--profile-set", action="append", metavar="KEY=VALUE")
    resume.add_argument("--force", action="store_true", help="accept a config changed since outputs were written")
    resume.add_argument("--time-factor", type=float, default=1.0, help="multiply the time limit of TIMEOUT stages")
    resume.add_argument("--mem-factor", type=float, default=1.0, help="multiply the memory of OOM stages")

    cancel = sub.add_parser("cancel", help="cancel a run's queued and running jobs")
    cancel.add_argument("run")

    logs = sub.add_parser("logs", help="stderr tails of failed shards, grouped by error")
    logs.add_argument("run")
    logs.add_argument("--failed", action="store_true", help="failed shards (the default and only view)")
    logs.add_argument("--tail", type=int, default=20)

    report = sub.add_parser("report", help="tables and figures across finished runs (Table 1/2, Fig. 4/5)")
    report.add_argument("runs", nargs="+", help="finished run directories")
    report.add_argument("--out", default="reports/comparison", help="output directory (index.md, CSV, PNG)")
    report.add_argument("--latex", action="store_true", help="also write LaTeX tables")

    detect = sub.add_parser("detect", help="detect retrieval heads of a local HF causal LM, here or on a cluster")
    detect.add_argument("--model", required=True, help="local HF checkpoint directory")
    detect.add_argument("--haystack", default="builtin",
                        help="builtin prose (default), a text file, a folder of .txt files or a saved datasets dir")
    detect.add_argument("--needles", default="builtin", help="jsonl of {needle, question, answer} (default: builtin)")
    detect.add_argument("--template", default=DEFAULT_TEMPLATE, help="prompt with {context} and {question}")
    detect.add_argument("--lengths", default="1000:4000:4", help="START:END:COUNT context lengths in tokens")
    detect.add_argument("--depths", type=int, default=5)
    detect.add_argument("--max-new-tokens", type=int, default=64)
    detect.add_argument("--rouge-threshold", type=float, default=0.5)
    detect.add_argument("--tau", type=float, default=0.1)
    detect.add_argument("--dtype", default="bfloat16")
    detect.add_argument("--shards", type=int, default=1, help="array tasks over the NIAH instances")
    detect.add_argument("--out", required=True, help="run directory (scores in stages/merge_scores/)")
    detect.add_argument("--max-parallel", type=int, default=0, help="local processes at once (default: the profile's)")
    _add_cluster_arguments(detect, required=False)

    mask = sub.add_parser("mask", help="write a masked checkpoint that reuses the model's weight files")
    mask.add_argument("--model", required=True)
    mask.add_argument("--heads", help="comma-separated heads, e.g. L3-H7,L2-H1")
    mask.add_argument("--heads-file", help="json with a 'heads' list (a select_heads output)")
    mask.add_argument("--out", required=True)
    mask.add_argument("--o-proj-pattern", help="module path of o_proj with {layer}, when it cannot be found "
                      "(default: found from the model, e.g. model.layers.{layer}.self_attn.o_proj)")
    return parser
