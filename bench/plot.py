"""The figures of docs/performance.md (matplotlib, imported only when plotting)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any


def cluster_figure(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nodes = [r["nodes"] for r in results]
    fig, (ax_t, ax_r, ax_m) = plt.subplots(1, 3, figsize=(15, 4.6))
    ax_t.plot(nodes, [r["overhead"] for r in results], "o-", label="orchestrator wall time (overhead)")
    ax_t.plot(nodes, [r["cpu"] for r in results], "s-", label="orchestrator CPU time")
    ax_t.plot(nodes, [r["emulator_cpu"] for r in results], "^--", label="emulator + kubelet CPU time")
    big = max(nodes)
    ref = next(r for r in results if r["nodes"] == big)["overhead"]
    ax_t.plot(nodes, [ref * n / big for n in nodes], ":", color="grey", label="linear (through the largest)")
    ax_t.axhline(30, color="red", lw=0.8, ls="--", label="bar: 30 s at 1,000 nodes")
    ax_t.set(xscale="log", yscale="log", xlabel="nodes", ylabel="seconds", title="time of `multus-cleanup run`")
    ax_t.legend(fontsize=8)
    ax_r.plot(nodes, [r["total_requests"] for r in results], "o-", label="all API requests")
    ax_r.plot(nodes, [r["requests"].get("create", 0) for r in results], "s--", label="create (one pod per node)")
    const = min(r["total_requests"] - r["nodes"] for r in results)
    ax_r.plot(nodes, [4 * n + max(const, 0) for n in nodes], ":", color="red", label="bar: 4 per node + constant")
    ax_r.set(xscale="log", yscale="log", xlabel="nodes", ylabel="requests", title="API requests")
    ax_r.legend(fontsize=8)
    ax_m.plot(nodes, [r["peak_rss_mb"] for r in results], "o-", label="orchestrator peak RSS")
    ax_m.axhline(300, color="red", lw=0.8, ls="--", label="bar: 300 MB at 5,000 nodes")
    ax_m.set(xscale="log", xlabel="nodes", ylabel="MB", ylim=(0, 320), title="orchestrator memory")
    ax_m.legend(fontsize=8)
    for ax in (ax_t, ax_r, ax_m):
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def concurrency_figure(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conc = [r["concurrency"] for r in results]
    fig, ax = plt.subplots(figsize=(6.5, 4.4))
    ax.plot(conc, [r["wall"] for r in results], "o-", label="wall time")
    ax.plot(conc, [r["ideal_node_time"] for r in results], ":", color="grey",
            label="ceil(nodes / concurrency) x pod time")
    ax.plot(conc, [r["overhead"] for r in results], "s--", label="overhead (wall - ideal)")
    first = results[0]
    ax.set(xscale="log", yscale="log", xlabel="cluster.concurrency", ylabel="seconds",
           title=f"{first['nodes']:,} nodes, each cleanup pod takes {first['delay']:g} s")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def real_control_plane_figure(results: list[dict[str, Any]], path: Path) -> None:
    """Per size: the run's phases against its floor; for the largest run, Multus pods left and nodes cleaned
    over time, and the CPU cores each process used."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_p, ax_g, ax_c) = plt.subplots(1, 3, figsize=(16, 4.8))
    labels = [f"{r['nodes']:,}" for r in results]
    x = list(range(len(results)))
    # the stop and the sweep overlap (each node is cleaned once its own Multus pod is gone): wall time as
    # start-up, then everything after the DaemonSet patch
    start = [r.get("to_patch_seconds") or 0.0 for r in results]
    rest = [r["wall_seconds"] - s for r, s in zip(results, start, strict=True)]
    ax_p.bar(x, start, label="start-up to the stop")
    ax_p.bar(x, rest, bottom=start, label="stop and sweep (overlapping), summary")
    ax_p.scatter(x, [r["floor_seconds"] for r in results], marker="_", s=900, color="black", zorder=3,
                 label="floor: pod time + Multus pods' deletion time")
    ax_p.scatter(x, [r.get("controller_floor_seconds") or 0.0 for r in results], marker="_", s=900,
                 color="grey", zorder=3, label="issue 11's floor: pod time + nodes / 20 (DaemonSet controller)")
    ax_p.axhline(150, color="orange", lw=0.8, ls="--", label="the bar: 150 s")
    ax_p.axhline(300, color="red", lw=0.8, ls="--", label="Helm's default --timeout (5 min)")
    for i, r in enumerate(results):
        if not r["success"]:
            ax_p.annotate("FAILED", (i, r["wall_seconds"]), ha="center", va="bottom", color="red")
    ax_p.set_xticks(x, labels)
    ax_p.set(xlabel="fake nodes", ylabel="seconds", title="multus-cleanup run, default values")
    ax_p.legend(fontsize=8)
    big = max(results, key=lambda r: r["nodes"])
    t = [p[0] for p in big["progress"]]
    ax_g.plot(t, [p[1] for p in big["progress"]], label="Multus pods left")
    ax_g.plot(t, [p[2] for p in big["progress"]], label="nodes cleaned (report written)")
    ax_g.set(xlabel="seconds since the hook started", ylabel="count",
             title=f"{big['nodes']:,} nodes" + ("" if big["success"] else " (failed)"))
    ax_g.legend(fontsize=8)
    samples = big["timeline"]
    names = [k for k in samples[-1] if k not in ("t", "rss_mb")]
    mids = [(a["t"] + b["t"]) / 2 for a, b in itertools.pairwise(samples)]
    stacks = [[max(0.0, (b.get(n, 0.0) - a.get(n, 0.0)) / max(1e-6, b["t"] - a["t"]))
               for a, b in itertools.pairwise(samples)] for n in names]
    ax_c.stackplot(mids, *stacks, labels=names)
    ax_c.axhline(2, color="red", lw=0.8, ls="--", label="the machine's 2 cores")
    ax_c.set(xlabel="seconds since the hook started", ylabel="cores", title=f"CPU, {big['nodes']:,} nodes")
    ax_c.legend(fontsize=7, loc="upper right")
    for ax in (ax_p, ax_g, ax_c):
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
