"""`multus-cleanup node`: cold start of the console script (a new interpreter, as in every node pod) and
the cleanup itself in-process (`multus_cleanup.node.engine.clean_node`), on the footprints the tests use
(tests/footprints.py), as medians over repeated runs. Plus `python -X importtime` broken down."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import CONSOLE_SCRIPT, CONSOLE_SHIM, PEAK_ENV, VENV_BIN, median, p90, table, use_test_helpers

use_test_helpers()

import footprints as fp  # noqa: E402
from multus_cleanup.config import CleanupConfig  # noqa: E402
from multus_cleanup.node.engine import NodeRun, clean_node  # noqa: E402


@dataclass
class Timing:
    name: str
    samples: list[float]  # seconds
    cpu: list[float] | None = None  # child CPU seconds (user + sys), for subprocesses
    rss_kb: list[int] | None = None
    note: str = ""

    @property
    def median_ms(self) -> float:
        return median(self.samples) * 1000

    def row(self) -> list[str]:
        cpu = f"{median(self.cpu) * 1000:.1f}" if self.cpu else "-"
        rss = f"{median([float(r) for r in self.rss_kb]) / 1024:.1f}" if self.rss_kb else "-"
        return [self.name, f"{self.median_ms:.1f}", f"{p90(self.samples) * 1000:.1f}",
                f"{min(self.samples) * 1000:.1f}", cpu, rss, str(len(self.samples)), self.note]


# -- node trees --------------------------------------------------------------------------------------------

def build(root: Path, flavour: str) -> None:
    """A node before Multus plus Multus's footprint: 'clean' (none), 'thick', or 'thin' (renamed primary)."""
    root.mkdir(parents=True)
    primary = fp.node_before_multus(root)
    if flavour == "thick":
        fp.install_thick(root, primary)
    elif flavour == "thin":
        fp.install_thin(root, primary, rename_conf_file=True)


def _fresh(base: Path, flavour: str, i: int, prefix: str = "") -> Path:
    root = base / f"{prefix}{flavour}-{i}"
    if root.exists():
        shutil.rmtree(root)
    build(root, flavour)
    return root


# -- cold start: the console script in a new process --------------------------------------------------------

def _spawn(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return elapsed, usage.ru_utime + usage.ru_stime, proc.returncode


def _peak_rss_kb(argv: list[str], base: Path) -> int | None:
    """The process's own peak RSS, from a run of the same command through the console-script shim."""
    if argv[0] == str(CONSOLE_SCRIPT):
        argv = [str(VENV_BIN / "python"), "-c", CONSOLE_SHIM, *argv[1:]]
    elif argv[1:2] == ["-c"] and argv[2] == "pass":
        argv = [*argv[:2], CONSOLE_SHIM.split("from multus_cleanup")[0]]
    else:
        return None
    peak = base / "peak-rss-kb"
    peak.unlink(missing_ok=True)
    _spawn(argv, {**os.environ, PEAK_ENV: str(peak)})
    return int(peak.read_text()) if peak.exists() else None


def cold(name: str, runs: int, argv_for: Callable[[int], list[str]], expect: int, base: Path,
         note: str = "") -> Timing:
    samples, cpu = [], []
    _spawn(argv_for(-1))  # warm the page cache: a node pulls the image once, then every file is cached
    for i in range(runs):
        elapsed, used, code = _spawn(argv_for(i))
        if code != expect:
            raise RuntimeError(f"{name}: {argv_for(i)} exited {code}, expected {expect}")
        samples.append(elapsed)
        cpu.append(used)
    peaks = [p for p in (_peak_rss_kb(argv_for(runs + i), base) for i in range(3)) if p is not None]
    return Timing(name, samples, cpu, peaks or None, note)


def cold_starts(base: Path, runs: int) -> list[Timing]:
    script = str(CONSOLE_SCRIPT)
    python = str(VENV_BIN / "python")
    clean = base / "clean-root"
    build(clean, "clean")

    def node(flavour: str, *extra: str) -> Callable[[int], list[str]]:
        def argv(i: int) -> list[str]:
            root = clean if flavour == "clean" else _fresh(base, flavour, i)
            return [script, "node", "--host-root", str(root), "--node-name", "bench", *extra]
        return argv

    return [
        cold("python -c pass (interpreter floor)", runs, lambda i: [python, "-c", "pass"], 0, base),
        cold("python -I -S -c pass (no site)", runs, lambda i: [python, "-I", "-S", "-c", "pass"], 0, base),
        cold("multus-cleanup --version", runs, lambda i: [script, "--version"], 0, base),
        cold("node --dry-run, clean root", runs, node("clean", "--dry-run"), 0, base),
        cold("node, clean root (nothing to do)", runs, node("clean"), 0, base),
        cold("node, thick footprint (full clean)", runs, node("thick"), 0, base),
        cold("node, thin footprint (full clean)", runs, node("thin"), 0, base),
        cold("node as in its pod (--report-file), thick", runs,
             lambda i: [*node("thick")(i), "--report-file", str(base / "termination-log")], 0, base),
    ]


# -- the cleanup in-process ---------------------------------------------------------------------------------

def in_process(base: Path, runs: int) -> list[Timing]:
    cfg = CleanupConfig().node
    results = []
    for flavour, dry_run, label in (("clean", True, "clean_node dry-run, clean root"),
                                    ("thick", True, "clean_node dry-run, thick footprint"),
                                    ("clean", False, "clean_node, clean root"),
                                    ("thick", False, "clean_node, thick footprint"),
                                    ("thin", False, "clean_node, thin footprint (renamed primary)")):
        samples = []
        for i in range(runs + 1):
            root = _fresh(base, flavour, i, prefix="inproc-")
            start = time.perf_counter()
            report = clean_node(cfg, NodeRun(host_root=str(root), node_name="bench", dry_run=dry_run))
            elapsed = time.perf_counter() - start
            if not dry_run and not report.clean:
                raise RuntimeError(f"{label}: not clean: {report.errors}")
            if i:  # the first run warms imports and caches
                samples.append(elapsed)
        results.append(Timing(label, samples, note=f"{len(report.removed)} removed, {len(report.restored)} restored"))
    return results


# -- import time ----------------------------------------------------------------------------------------------

def import_times(base: Path, runs: int = 7) -> tuple[float, list[tuple[str, float, float]], list[tuple[str, float]]]:
    """-X importtime of `multus-cleanup node --dry-run` on a clean root: (total ms, [(top-level import,
    cumulative ms, self ms)], [(module, self ms)]), medians over `runs`."""
    root = base / "importtime-root"
    if not root.exists():
        build(root, "clean")
    argv = [str(VENV_BIN / "python"), "-X", "importtime", str(CONSOLE_SCRIPT), "node", "--host-root", str(root),
            "--dry-run"]
    self_time: dict[str, list[float]] = defaultdict(list)
    top: dict[str, list[float]] = defaultdict(list)
    totals = []
    for i in range(runs + 1):
        err = subprocess.run(argv, capture_output=True, text=True, check=True).stderr
        if i == 0:
            continue  # warm the page cache and the bytecode cache
        total = 0.0
        for line in err.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, cum_us, name = line.split(":", 1)[1].split("|")
            depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
            module = name.strip()
            self_time[module].append(int(self_us) / 1000)
            if depth == 0:
                top[module].append(int(cum_us) / 1000)
                total += int(cum_us) / 1000
        totals.append(total)
    tops = sorted(((m, median(v), median(self_time[m])) for m, v in top.items()), key=lambda t: -t[1])
    selfs = sorted(((m, median(v)) for m, v in self_time.items()), key=lambda t: -t[1])
    return median(totals), tops, selfs


# -- all of it --------------------------------------------------------------------------------------------------

def run(runs: int, log: Any = print) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-node-") as tmp:
        base = Path(tmp)
        log(f"  cold starts ({runs} runs each) ...")
        cold_results = cold_starts(base, runs)
        log(f"  clean_node in-process ({runs} runs each) ...")
        inproc = in_process(base, runs)
        log("  import times ...")
        total, tops, selfs = import_times(base)
        fs = subprocess.run(["df", "-T", tmp], capture_output=True, text=True).stdout.splitlines()[-1].split()[1]
    return {"cold": cold_results, "inproc": inproc, "import_total_ms": total, "import_top": tops,
            "import_self": selfs, "tmp_fs": fs, "runs": runs}


def report(result: dict[str, Any]) -> str:
    headers = ["what", "median ms", "p90 ms", "min ms", "CPU ms", "peak RSS MB", "runs", "note"]
    parts = ["cold start: the console script in a new process (wall time from spawn to exit):",
             table(headers, [t.row() for t in result["cold"]]), "",
             f"the cleanup in-process (multus_cleanup.node.engine.clean_node; temp roots on {result['tmp_fs']}):",
             table(headers, [t.row() for t in result["inproc"]]), "",
             f"imports of `multus-cleanup node --dry-run` (python -X importtime, medians): "
             f"{result['import_total_ms']:.1f} ms in all",
             table(["top-level import", "cumulative ms", "self ms"],
                   [[m, f"{c:.1f}", f"{s:.1f}"] for m, c, s in result["import_top"][:12]]), "",
             "largest self times (any depth):",
             table(["module", "self ms"], [[m, f"{s:.2f}"] for m, s in result["import_self"][:15]])]
    return "\n".join(parts)


def to_json(result: dict[str, Any]) -> dict[str, Any]:
    def timing(t: Timing) -> dict[str, Any]:
        return {"name": t.name, "median_ms": t.median_ms, "p90_ms": p90(t.samples) * 1000,
                "min_ms": min(t.samples) * 1000, "cpu_ms": median(t.cpu) * 1000 if t.cpu else None,
                "rss_mb": median([float(r) for r in t.rss_kb]) / 1024 if t.rss_kb else None,
                "runs": len(t.samples), "note": t.note}
    return {"cold": [timing(t) for t in result["cold"]], "inproc": [timing(t) for t in result["inproc"]],
            "import_total_ms": result["import_total_ms"], "import_top": result["import_top"],
            "import_self": result["import_self"][:30], "tmp_fs": result["tmp_fs"], "runs": result["runs"]}
