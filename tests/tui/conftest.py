"""Control-room tests: local time is UTC so clock times in snapshots never vary."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

os.environ["TZ"] = "UTC"
time.tzset()
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "tower.db"
