"""Session-wide real parts for the offline tests: one moto server, one MariaDB server, and a
scratch directory under .run/. Each is started once and stopped by its process id at the end."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ROOT, MariaDB, MotoServer  # noqa: E402
from world import World  # noqa: E402


@pytest.fixture(scope="session")
def workdir() -> Path:
    d = ROOT / ".run" / f"pytest-{os.getpid()}"
    d.mkdir(parents=True, exist_ok=True)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def moto(workdir):
    server = MotoServer(workdir).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mariadb(workdir):
    db = MariaDB(workdir, "canary").start()
    yield db
    db.stop()


@pytest.fixture
def world(moto) -> World:
    """A freshly seeded emulated account for each test."""
    moto.reset()
    return World(moto.endpoint).seed()
