"""Arguments of the cluster commands. Importing this module must stay cheap (no API client)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, TextIO

from ..report import ExitCode
from .jobclock import job_elapsed
from .signals import Terminated, terminate_on_signals

DEFAULT_CONFIG = "/etc/multus-cleanup/config.yaml"
OWNER_ENV = ("MULTUS_CLEANUP_JOB_NAME", "MULTUS_CLEANUP_JOB_UID")


def register(commands: Any) -> None:  # argparse's subparsers action has no public type
    """Add the cluster commands to the top-level parser."""
    helps = {
        "run": ("stop Multus, clean and verify every node, delete what the config asks for",
                "The full cleanup, as the chart's pre-delete hook runs it. Also repairs a cluster where "
                "Multus was already deleted the naive way. Exit 0 only if every required node is clean."),
        "plan": ("print what `run` would do, changing nothing", "Reads the cluster and prints each step."),
        "check": ("report, per node, which Multus files remain and which error they cause",
                  "Runs the node engine with --dry-run on every node. Changes no node. Exit 0 only if every "
                  "node is clean."),
    }
    from .presets import load_presets  # a small file beside the module: the names for --preset's help

    presets = ", ".join(sorted(load_presets()))
    for name, (short, description) in helps.items():
        sub = commands.add_parser(name, help=short, description=description)
        sub.add_argument("--config", metavar="FILE",
                         help=f"YAML cleanup config (default: {DEFAULT_CONFIG} if present, else built-in defaults)")
        sub.add_argument("--kubeconfig", metavar="FILE",
                         help="kubeconfig to use (default: in-cluster config, else $KUBECONFIG or ~/.kube/config)")
        sub.add_argument("--context", metavar="NAME", help="kubeconfig context")
        sub.add_argument("--preset", metavar="NAME",
                         help=f"a platform that installs Multus itself, one of {presets}: its Multus DaemonSets "
                              "and host paths (what --config sets wins; docs/repair.md)")
        sub.add_argument("--verbose", action="store_true", help="log every retry and API detail")
        if name != "plan":
            sub.add_argument("--output", choices=("text", "json"), default="text", help="summary format")


def dispatch(args: argparse.Namespace, out: TextIO = sys.stdout, err_out: TextIO = sys.stderr) -> int:
    import logging  # here, not at the top: `multus-cleanup node` imports this module and never logs

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=err_out,
                        format="%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    from ..config import parse_config, read_config
    from . import orchestrator
    from .kube import ApiError, connect
    from .nodepod import Owner

    path = args.config or (DEFAULT_CONFIG if os.path.exists(DEFAULT_CONFIG) else None)
    raw = read_config(path)
    preset = None
    if args.preset:
        from .presets import get_preset

        preset = get_preset(args.preset)  # an unknown name stops here, before anything is read or changed
        raw = preset.apply(raw)
    config = parse_config(raw)
    if preset is not None:
        logging.getLogger(__name__).warning("%s", preset.warning())
    try:
        kube = connect(args.kubeconfig, args.context)
    except Exception as err:  # the kubernetes config loader raises several unrelated types
        print(f"multus-cleanup: cannot load the cluster configuration: {err}", file=err_out)
        return ExitCode.FAILED
    name, uid = (os.environ.get(key) for key in OWNER_ENV)
    owner = Owner(name, uid) if name and uid else None
    try:
        with terminate_on_signals():
            if args.command == "plan":
                print(orchestrator.plan(config, kube), file=out)
                return ExitCode.OK
            if args.command == "run":
                summary = orchestrator.run(config, kube, owner, elapsed=job_elapsed(kube, config, owner))
            else:
                summary = orchestrator.check(config, kube, owner)
    except ApiError as err:
        print(f"multus-cleanup: {err}", file=err_out)
        return ExitCode.FAILED
    except Terminated as stop:
        print(f"multus-cleanup: stopped by {stop.signal} before it could summarise", file=err_out)
        return ExitCode.FAILED
    print(summary.to_json() if args.output == "json" else summary.to_text(), file=out)
    return ExitCode.OK if summary.success else ExitCode.FAILED
