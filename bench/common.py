"""Shared helpers: repository paths, the machine description, timing statistics, growth fits."""

from __future__ import annotations

import math
import os
import platform
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
CONSOLE_SCRIPT = VENV_BIN / "multus-cleanup"


def use_test_helpers() -> None:
    """The emulator (tests/api/emulator) and the footprint builders (tests/footprints.py) are imported
    from the test tree, read-only; the bench adds nothing to the test suite."""
    for path in (ROOT / "tests" / "api", ROOT / "tests", ROOT / "hook"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {"nproc": str(os.cpu_count()), "cpu": model, "memory": mem, "python": platform.python_version(),
            "kernel": platform.release(), "platform": platform.platform(), "load": load()}


def load() -> str:
    """The 1/5/15-minute load averages: other work on the machine shows up in every wall time."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p90(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]


def exponent(sizes: list[int], values: list[float]) -> float:
    """Least-squares slope of log(value) against log(size): 1.0 is linear, 2.0 quadratic."""
    pairs = [(math.log(s), math.log(v)) for s, v in zip(sizes, values, strict=True) if s > 0 and v > 0]
    if len(pairs) < 2:
        return float("nan")
    mx = sum(x for x, _ in pairs) / len(pairs)
    my = sum(y for _, y in pairs) / len(pairs)
    sxx = sum((x - mx) ** 2 for x, _ in pairs)
    return sum((x - mx) * (y - my) for x, y in pairs) / sxx if sxx else float("nan")


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table (readable as plain text too)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths,
                                                                                              strict=True))) + " |"
    sep = "|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


# The console script is `from multus_cleanup.cli import main; sys.exit(main())`. This is the same, plus the
# process's own peak RSS (VmHWM of its address space) written at exit. getrusage/wait4's ru_maxrss cannot
# be used: a child spawned with vfork+exec inherits the spawning process's high-water mark (Linux keeps the
# larger of the pre-exec and post-exec peaks), so every child of a large bench process would look large.
PEAK_ENV = "BENCH_PEAK_FILE"
CONSOLE_SHIM = (
    "import atexit, os, sys\n"
    "def _peak():\n"
    "    with open('/proc/self/status') as status, open(os.environ['BENCH_PEAK_FILE'], 'w') as out:\n"
    "        out.write(next(line for line in status if line.startswith('VmHWM:')).split()[1])\n"
    "atexit.register(_peak)\n"
    "from multus_cleanup.cli import main\n"
    "sys.exit(main())\n"
)


def shim_argv(*args: str) -> list[str]:
    """argv running `multus-cleanup ARGS...` through CONSOLE_SHIM (set PEAK_ENV in its environment)."""
    return [str(VENV_BIN / "python"), "-c", CONSOLE_SHIM, *args]
