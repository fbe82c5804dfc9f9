"""pytest imports every test module by its file name (rootdir-relative, no packages): two files of one name
in different levels would stop the whole run at collection, so each name is taken once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_module_name_is_unique_across_the_levels() -> None:
    names = Counter(p.name for p in TESTS.rglob("*.py") if p.name != "conftest.py" and "__pycache__" not in p.parts)
    assert [n for n, count in names.items() if count > 1] == []
