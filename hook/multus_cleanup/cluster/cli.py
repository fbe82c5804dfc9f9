"""Arguments of the cluster commands. Importing this module must stay cheap (no API client)."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:  # argparse's subparsers action has no public type
    """Add the cluster commands (run, plan, check) to the top-level parser."""


def dispatch(args: argparse.Namespace) -> int:
    raise SystemExit(f"multus-cleanup: unknown command {args.command}")
