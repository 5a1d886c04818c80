"""A real single-node SLURM cluster for the tests, started by slurm_templates/local-cluster/start.sh
(see tests/helpers/local_cluster.py for when it is started, stopped or skipped)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

# Not taken from tests.conftest: conftest imports this module to offer the fixture.
from tests.helpers.local_cluster import LocalCluster

SLURM = LocalCluster("local-cluster", "local SLURM cluster")


@pytest.fixture(scope="session")
def local_slurm() -> Iterator[None]:
    """A running single-node cluster: partition `debug`, accounting on, no GPUs."""
    yield from SLURM.session()
