"""The docs stay true to the code: every config key is documented, every failure message the cleanup
prints has its explanation in docs/uninstall.md, and every relative link resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from multus_cleanup.config import cluster as cluster_config
from multus_cleanup.config import node as node_config

ROOT = Path(__file__).parents[2]
HOOK = ROOT / "hook" / "multus_cleanup"

# (a phrase the code prints, the file that prints it): each must be explained in docs/uninstall.md
FAILURE_MESSAGES = [
    ("node(s) are not clean", "cluster/orchestrator.py"),
    ("the cleanup was stopped (", "cluster/orchestrator.py"),
    ("node(s) could not be cleaned (unreachableNodes: fail)", "cluster/orchestrator.py"),
    ("cannot remove", "node/engine.py"),
    ("read-only file system", "node/hostfs.py"),
    ("permission denied", "node/hostfs.py"),
    ("new pods on this node would fail", "node/engine.py"),
    ("no CNI config in", "node/verify.py"),
    ("failed to find plugin", "node/verify.py"),
    ("several renamed primary configs", "node/footprint.py"),
    ("its cleanup pod cannot start", "cluster/sweep.py"),
    ("ImagePullBackOff", "cluster/sweep.py"),
    ("CreateContainerConfigError", "cluster/sweep.py"),
    ("the node command rejected its configuration", "cluster/sweep.py"),
    ("without a report", "cluster/sweep.py"),
    ("pod {phase.lower()} without running", "cluster/sweep.py"),
    ("its cleanup pod was deleted before it finished", "cluster/sweep.py"),
    ("no report within", "cluster/sweep.py"),
    ("its cleanup pod did not finish within its deadline", "cluster/sweep.py"),
    ("not cleaned: the cleanup ran out of time", "cluster/sweep.py"),
    ("NotReady: ", "cluster/nodes.py"),
    ("stuck Terminating: the node or its kubelet may be down", "cluster/stop.py"),
    ("ErrImageNeverPull", "cluster/sweep.py"),
    ("CreateContainerError", "cluster/sweep.py"),
    ("the watch on the cleanup pods in namespace", "cluster/sweep.py"),
    ("kept failing for", "cluster/sweep.py"),
    ("watching cleanup pods failed", "cluster/sweep.py"),
    ("read its report from the pod's log", "cluster/sweep.py"),
    ("report shortened to fit the pod's termination message", "report.py"),
    ("the API server would reject the cleanup's node pods", "cluster/preflight.py"),
    ("exceeded quota", "cluster/kube.py"),
    ("a ResourceQuota has no room", "cluster/kube.py"),
    ("pod(s) are still attached to secondary networks", "cluster/preflight.py"),
    ("Multus came back while the nodes were cleaned", "cluster/orchestrator.py"),
    ("was restored during the cleanup", "cluster/comeback.py"),
    ("is managed by", "cluster/comeback.py"),
    ("permission denied: the cleanup's ServiceAccount may not", "cluster/kube.py"),
    ("invalid configuration: ", "cli.py"),
    ("cannot load the cluster configuration", "cluster/cli.py"),
]


@pytest.mark.parametrize(("phrase", "source"), FAILURE_MESSAGES, ids=[m for m, _ in FAILURE_MESSAGES])
def test_every_failure_message_is_explained(phrase: str, source: str) -> None:
    assert phrase in (HOOK / source).read_text(), f"{source} no longer prints {phrase!r}: update this list"
    documented = phrase.replace("{phase.lower()}", "failed")
    assert documented in (ROOT / "docs" / "uninstall.md").read_text(), f"docs/uninstall.md: explain {phrase!r}"


def test_every_config_key_is_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    keys = node_config._KEYS | cluster_config._KEYS | cluster_config._POD_KEYS
    missing = sorted(k for k in keys if f"`{k}`" not in text)
    assert missing == []


def test_relative_links_resolve() -> None:
    broken = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert broken == []


def test_readme_quick_start_has_exactly_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    block = text.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip()]
    assert [c.split("#")[0].strip() for c in commands] == ["sudo python3 -m demo", "sudo tools/test"]
