"""A real single-host Grid Engine for the tests, started by slurm_templates/local-gridengine/start.sh
(see tests/helpers/local_cluster.py for when it is started, stopped or skipped)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

# Not taken from tests.conftest: conftest imports this module to offer the fixture.
from tests.helpers.local_cluster import LocalCluster

GRID_ENGINE = LocalCluster("local-gridengine", "local Grid Engine cluster")


@pytest.fixture(scope="session")
def local_gridengine() -> Iterator[None]:
    """A running single-host Grid Engine: queue all.q (one slot per CPU), PE smp, accounting on."""
    yield from GRID_ENGINE.session()
