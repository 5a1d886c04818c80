"""Every subcommand the parser offers is one the command runs, and the shared cluster flags parse."""
import argparse

from jobs.cli import COMMANDS
from jobs.cli_parser import build_parser


def test_every_subcommand_has_a_handler_and_no_handler_lacks_a_subcommand():
    parser = build_parser()
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subcommands.choices) == set(COMMANDS)


def test_a_study_takes_the_cluster_flags_and_runs_here_without_them():
    here = build_parser().parse_args(["study", "s.yaml"])
    assert (here.command, here.cluster, here.dry_run, here.force) == ("study", None, False, False)
    there = build_parser().parse_args(["study", "s.yaml", "--cluster", "slurm-4xh100", "--dry-run",
                                       "--profile-set", "account=x"])
    assert (there.cluster, there.dry_run, there.profile_set) == ("slurm-4xh100", True, ["account=x"])
