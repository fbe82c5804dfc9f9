"""`multus-cleanup`: the command line. Imports stay lazy so `node` starts fast on every node."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

from . import __version__
from .config import ConfigError
from .report import ExitCode, NodeReport


def build_parser(env: Mapping[str, str] = os.environ, *, cluster_commands: bool = True) -> argparse.ArgumentParser:
    """The whole command line; `cluster_commands=False` leaves out run/plan/check, whose arguments live in
    the orchestrator's package: `multus-cleanup node` never imports `multus_cleanup.cluster` at all."""
    parser = argparse.ArgumentParser(
        prog="multus-cleanup",
        description="Uninstall Multus CNI completely: clean every node, restore the primary CNI config, "
                    "verify that new pods can start.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    node = commands.add_parser(
        "node", help="clean this node (its root filesystem mounted at --host-root)",
        description="Remove Multus's files from one node, restore a primary CNI config that Multus renamed, "
                    "and verify the config the container runtime will load. Exit 0: the node is clean; "
                    "1: something is left or failed (the report says what); 2: bad usage or config.",
    )
    node.add_argument("--host-root", default="/host", metavar="DIR",
                      help="where the node's root filesystem is mounted (default: /host)")
    node.add_argument("--config", metavar="FILE",
                      help="YAML config (the `node:` section sets paths; default: $MULTUS_CLEANUP_CONFIG, "
                           "else the Multus v4 layout)")
    node.add_argument("--dry-run", action="store_true", help="report what would be done; change nothing")
    node.add_argument("--output", choices=("text", "json"), default="text", help="report format")
    node.add_argument("--backup-dir", metavar="DIR",
                      help="a host path: move Multus's files there instead of deleting them")
    node.add_argument("--report-file", metavar="FILE",
                      help="also write the report as compact JSON to FILE (e.g. /dev/termination-log)")
    node.add_argument("--restore-renamed-primary-only", action="store_true",
                      help="only rename back the primary config that thin Multus's --rename-conf-file renamed "
                           "to <name>.old, leaving Multus's files (thin Multus's init container: a restarted "
                           "thin Multus finds no primary config otherwise)")
    node.add_argument("--node-name", default=env.get("NODE_NAME") or socket.gethostname(),
                      help="the node's name in the report (default: $NODE_NAME or the hostname)")

    if cluster_commands:
        from .cluster.cli import register  # cheap: defines arguments only, imports no API client

        register(commands)
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None,
         stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """`environ`, `stdout` and `stderr` stand in for the process's own (tests run several commands at once)."""
    env = os.environ if environ is None else environ
    out, err_out = stdout or sys.stdout, stderr or sys.stderr
    words = sys.argv[1:] if argv is None else list(argv)
    # the node engine's command builds only its own parser (the import contract in pyproject.toml)
    args = build_parser(env, cluster_commands=words[:1] != ["node"]).parse_args(words)
    try:
        if args.command == "node":
            return _node(args, env, out, err_out)
        from .cluster.cli import dispatch

        return dispatch(args, out, err_out)
    except ConfigError as err:
        what = "" if err.field.startswith("-") else "invalid configuration: "
        print(f"multus-cleanup: {what}{err}", file=err_out)
        return ExitCode.USAGE


def _node(args: argparse.Namespace, env: Mapping[str, str], out: TextIO, err_out: TextIO) -> int:
    from .config import CONFIG_ENV, load_config
    from .config.node import check_backup_dir
    from .node.engine import NodeRun, clean_node, restore_renamed_primary
    from .report import LOG_REPORT_PREFIX

    if args.restore_renamed_primary_only and (args.backup_dir or args.report_file or args.output != "text"):
        raise ConfigError("--restore-renamed-primary-only", "takes none of --backup-dir, --report-file, --output")
    config = load_config(args.config, env.get(CONFIG_ENV))
    if not os.path.isdir(args.host_root):
        raise ConfigError("--host-root", f"{args.host_root} is not a directory (mount the node's root there)")
    if args.backup_dir:
        check_backup_dir(config.node, args.backup_dir)
    run = NodeRun(host_root=args.host_root, node_name=args.node_name, dry_run=args.dry_run,
                  backup_dir=args.backup_dir)
    try:
        if args.restore_renamed_primary_only:
            return _restored(restore_renamed_primary(config.node, run), out, err_out)
        report = clean_node(config.node, run)
    except OSError as err:
        print(f"multus-cleanup: cannot inspect the node: {err}", file=err_out)
        return ExitCode.FAILED
    print(report.to_json() if args.output == "json" else report.to_text(), file=out)
    if args.report_file:
        with open(args.report_file, "w", encoding="utf-8") as handle:  # may be a device file
            handle.write(report.to_termination_message())
        # The whole report, whatever its size: the orchestrator reads it from the pod's log when the
        # termination message (capped at 4 KiB by the kubelet) does not parse.
        print(LOG_REPORT_PREFIX + report.to_json(compact=True), file=out)
    if args.dry_run:
        return ExitCode.OK
    return ExitCode.OK if report.clean else ExitCode.FAILED


def _restored(report: NodeReport, out: TextIO, err_out: TextIO) -> int:
    for error in report.errors:
        print(f"multus-cleanup: {error}", file=err_out)
    verb = "would rename" if report.dry_run else "renamed"
    for move in report.restored:
        print(f"{report.node}: {verb} {move.source} back to {move.target} (thin Multus renames it again as it "
              "starts)", file=out)
    if report.clean and not report.restored:
        print(f"{report.node}: no renamed primary CNI config to rename back", file=out)
    return ExitCode.OK if report.clean else ExitCode.FAILED


if __name__ == "__main__":
    sys.exit(main())
