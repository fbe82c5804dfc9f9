"""The figures of docs/performance.md (matplotlib, imported only when plotting)."""

from __future__ import annotations

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
