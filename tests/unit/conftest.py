from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from multus_cleanup.cli import main

CleanupResult = tuple[int, dict[str, Any], str]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    host = tmp_path / "host"
    host.mkdir()
    return host


@pytest.fixture
def cleanup(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Callable[..., CleanupResult]:
    """Run `multus-cleanup node --output json` in-process: (exit code, report or {}, stderr)."""

    def run(root: Path, *args: str, config: dict[str, Any] | None = None) -> CleanupResult:
        argv = ["node", "--host-root", str(root), "--output", "json", "--node-name", "node-a", *args]
        if config is not None:
            cfg_file = tmp_path / f"config-{len(list(tmp_path.glob('config-*')))}.yaml"
            cfg_file.write_text(yaml.safe_dump(config))
            argv += ["--config", str(cfg_file)]
        code = main(argv)
        out, err = capsys.readouterr()
        return code, (json.loads(out) if out.strip() else {}), err

    return run


@pytest.fixture
def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("this test needs root (mount namespaces, setpriv); .ci/run runs it as root")
