"""tools/cluster: stand up, use and tear down the throwaway cluster.

  tools/cluster up --dir DIR [--nodes N]        build what is missing, start the cluster, print DIR/kubeconfig
  tools/cluster down --dir DIR [--remove]       stop exactly what `up` started (by PID and cgroup)
  tools/cluster kubelet stop|start --dir DIR --node NAME
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from . import cluster, images

ROOT = Path(__file__).resolve().parent.parent


def real_bin_dir(*, quiet: bool = False) -> Path:
    """$REAL_CACHE/bin of tools/build-real, after building what is missing (cached: seconds when warm)."""
    r = subprocess.run([str(ROOT / "tools" / "build-real")], stdout=subprocess.PIPE if quiet else sys.stderr,
                       stderr=subprocess.STDOUT if quiet else None, text=True, check=False)
    if r.returncode != 0:
        raise cluster.ClusterError("tools/build-real failed" + (f":\n{r.stdout[-3000:]}" if quiet else " (see above)"))
    out = subprocess.run([str(ROOT / "tools" / "build-real"), "--print-dir", "kubernetes"], capture_output=True,
                         text=True, check=True).stdout.strip()
    return Path(out).parent / "bin"


# tools/build-image names the cleanup image multus-cleanup:test; a pod's `multus-cleanup:test` means
# docker.io/library/multus-cleanup:test, so the nodes also carry it under a name of the cluster's own
HOOK_IMAGE_BUILT = "multus-cleanup:test"
HOOK_REPOSITORY = "localhost/multus-cleanup"
HOOK_TAG = "test"
HOOK_IMAGE = f"{HOOK_REPOSITORY}:{HOOK_TAG}"
HOOK_IMAGE_TAGS = ((HOOK_IMAGE_BUILT, f"docker.io/library/{HOOK_IMAGE_BUILT}"), (HOOK_IMAGE_BUILT, HOOK_IMAGE))


def hook_image_archive() -> Path | None:
    """The cleanup image tools/build-image writes, if it was built."""
    path = Path(os.environ.get("MULTUS_IMAGE_CACHE", ROOT / ".cache" / "image")) / "multus-cleanup.tar"
    return path if path.exists() else None


def cluster_images(bins: Path, out_dir: Path) -> list[Path]:
    archives = list(images.build_images(bins, out_dir).values())
    if (hook := hook_image_archive()) is not None:
        archives.append(hook)
    return archives


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="stand up a cluster in DIR")
    p_up.add_argument("--dir", required=True, type=Path)
    p_up.add_argument("--nodes", type=int, default=2, help="real nodes (the first is the control plane)")
    p_up.add_argument("--node-monitor-grace-period", type=int, default=None, metavar="SECONDS",
                      help="kube-controller-manager's (default: its own, 50 s)")
    p_down = sub.add_parser("down", help="stop the cluster in DIR")
    p_down.add_argument("--dir", required=True, type=Path)
    p_down.add_argument("--remove", action="store_true", help="also remove DIR")
    p_kubelet = sub.add_parser("kubelet", help="stop or start one node's kubelet")
    p_kubelet.add_argument("action", choices=("stop", "start"))
    p_kubelet.add_argument("--dir", required=True, type=Path)
    p_kubelet.add_argument("--node", required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            bins = real_bin_dir()
            archives = cluster_images(bins, ROOT / ".cache" / "cluster-images")
            c = cluster.up(args.dir, bins, nodes=args.nodes, images=archives, pause_image=images.PAUSE_IMAGE,
                           image_tags=HOOK_IMAGE_TAGS if hook_image_archive() else (),
                           node_monitor_grace_seconds=args.node_monitor_grace_period,
                           log=lambda m: print(m, file=sys.stderr))
            print(c.kubeconfig)
        elif args.command == "down":
            left = cluster.down(args.dir, remove=args.remove, log=lambda m: print(m, file=sys.stderr))
            return 1 if left else 0
        else:
            c = cluster.Cluster(args.dir, real_bin_dir())
            if args.action == "stop":
                c.stop_kubelet(args.node)
            else:
                c.start_kubelet(args.node)
    except cluster.ClusterError as exc:
        print(f"tools/cluster {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
