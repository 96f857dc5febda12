"""Services (tui/services/) hold the logic behind commands: no click and no Textual in them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_layering import ROOT, imported_roots

SERVICES = sorted((ROOT / "tui" / "services").glob("*.py"))


@pytest.mark.parametrize("path", SERVICES, ids=lambda p: p.name)
def test_a_service_imports_neither_click_nor_textual(path: Path):
    assert imported_roots(path) & {"click", "textual"} == set()


def test_the_guard_and_mcp_services_are_there():
    assert {"guard.py", "mcp_server.py", "mcp_install.py"} <= {p.name for p in SERVICES}
