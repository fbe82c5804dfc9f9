"""`python -m bench`: the whole benchmark, tables on stdout. See bench/README.md."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from .common import load, machine


def _ints(text: str) -> list[int]:
    return [int(x.replace("_", "")) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--sizes", type=_ints, default=None,
                        help="node counts for `multus-cleanup run` (default: 1,10,100,1000,5000; "
                             "with --real-control-plane 100,1000,5000)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per size; the run with the median overhead is reported (default 3)")
    parser.add_argument("--concurrency", type=int, default=20,
                        help="cluster.concurrency (default 20, as in docs/performance.md; the chart ships 50)")
    parser.add_argument("--delay", type=float, default=0.0,
                        help="seconds each simulated cleanup pod takes before it reports (default 0)")
    parser.add_argument("--scaling", default="1000:0.5:20,50,100,200", metavar="NODES:DELAY:C1,C2,...",
                        help="concurrency experiment: NODES nodes whose pods take DELAY s, at each concurrency "
                             "(default 1000:0.5:20,50,100,200; '' skips it)")
    parser.add_argument("--node-runs", type=int, default=30, help="repetitions per node-engine measurement (>= 20)")
    parser.add_argument("--skip-cluster", action="store_true", help="only the node engine")
    parser.add_argument("--skip-node", action="store_true", help="only the orchestrator")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every number to FILE")
    parser.add_argument("--plot", type=Path, metavar="FILE",
                        help="write the figures (FILE, and FILE with -concurrency before the suffix)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="run the orchestrator under py-spy (pip install py-spy): collapsed stacks in DIR; "
                             "timings are then not comparable")
    parser.add_argument("--real-control-plane", action="store_true",
                        help="only `multus-cleanup run` against a real control plane (devcluster: etcd, "
                             "kube-apiserver, kube-controller-manager, kube-scheduler) with the fake nodes of "
                             "bench/fakenodes.py and the chart's default values; needs root (bench/README.md)")
    parser.add_argument("--pod-seconds", type=float, default=5.0,
                        help="with --real-control-plane: seconds each fake node takes per cleanup pod (default 5)")
    parser.add_argument("--lease-interval", type=float, default=30.0,
                        help="with --real-control-plane: seconds between two renewals of a fake node's Lease "
                             "(default 30; kube-controller-manager's grace is 50)")
    parser.add_argument("--workdir", type=Path, help="with --real-control-plane: where the clusters live "
                        "(default: a temporary directory under /tmp)")
    parser.add_argument("--hook-rev", default="HEAD", help="with --real-control-plane: the commit whose hook/ "
                        "(the orchestrator) and chart/ run (default HEAD: not the working tree)")
    args = parser.parse_args(argv)
    if args.real_control_plane:
        return real_control_plane(args)
    if args.sizes is None:
        args.sizes = [1, 10, 100, 1000, 5000]

    started = time.monotonic()
    info = machine()
    print(f"machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']}, Python {info['python']}, "
          f"Linux {info['kernel']}; load average {info['load']}")
    out: dict[str, Any] = {"machine": info, "argv": sys.argv[1:]}
    if not args.skip_cluster:
        from . import cluster

        print(f"\n## `multus-cleanup run`: orchestrator subprocess vs API emulator + simulated kubelet "
              f"(concurrency {args.concurrency}, pod delay {args.delay:g} s, median of {args.repeat})")
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
        chosen = []
        for nodes in args.sizes:
            runs = cluster.run([nodes] * args.repeat, concurrency=args.concurrency, delay=args.delay,
                               profile_dir=args.profile)
            median_overhead = statistics.median_low([r.overhead for r in runs])
            chosen.append(next(r for r in runs if r.overhead == median_overhead))
        print()
        print(cluster.report(chosen))
        out["cluster"] = cluster.to_json(chosen)
        if args.scaling:
            n_text, d_text, c_text = args.scaling.split(":")
            print(f"\n## concurrency: {int(n_text):,} nodes, each cleanup pod takes {float(d_text):g} s")
            scaled = [cluster.run([int(n_text)], concurrency=c, delay=float(d_text))[0] for c in _ints(c_text)]
            print()
            print(cluster.scaling_report(scaled))
            out["scaling"] = cluster.to_json(scaled)
    if not args.skip_node:
        from . import node

        print(f"\n## `multus-cleanup node` ({args.node_runs} runs each)")
        result = node.run(args.node_runs)
        print()
        print(node.report(result))
        out["node"] = node.to_json(result)
    out["bench_seconds"] = time.monotonic() - started
    out["load_after"] = load()
    print(f"\nbench took {out['bench_seconds']:.0f} s; load average now {out['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    if args.plot:
        from . import plot

        if "cluster" in out:
            plot.cluster_figure(out["cluster"], args.plot)
            print(f"wrote {args.plot}")
        if out.get("scaling"):
            second = args.plot.with_name(f"{args.plot.stem}-concurrency{args.plot.suffix}")
            plot.concurrency_figure(out["scaling"], second)
            print(f"wrote {second}")
    return 0


def real_control_plane(args: argparse.Namespace) -> int:
    from . import realcp

    started = time.monotonic()
    info = machine()
    sizes = args.sizes or [100, 1000, 5000]
    print(f"machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']}, Python {info['python']}, "
          f"Linux {info['kernel']}; load average {info['load']}")
    print(f"\n## `multus-cleanup run` on a real control plane: {', '.join(f'{n:,}' for n in sizes)} fake nodes, "
          f"{args.pod_seconds:g} s per cleanup pod, the chart's default values")
    results = realcp.run(sizes, pod_seconds=args.pod_seconds, lease_interval=args.lease_interval,
                         workdir=args.workdir, hook_rev=args.hook_rev)
    print()
    print(realcp.report(results))
    out: dict[str, Any] = {"machine": info, "argv": sys.argv[1:], "real_control_plane": realcp.to_json(results),
                           "bench_seconds": time.monotonic() - started, "load_after": load()}
    print(f"\nbench took {out['bench_seconds']:.0f} s; load average now {out['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    if args.plot:
        from . import plot

        plot.real_control_plane_figure(out["real_control_plane"], args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
