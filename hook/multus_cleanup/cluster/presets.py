"""Repair presets for platforms that install Multus themselves (RKE2, kubespray, KubeVirt's CNAO, NVIDIA's
network operator): `multus-cleanup run --preset rke2` instead of typing the platform's DaemonSets and paths.

presets.yaml beside this module is the one source. The chart ships a copy of it (chart/files/repair-presets.yaml,
written by tools/sync-presets) and maps `repair.preset` the same way as `apply` below. A preset is a partial
cleanup config, and every key the user's own config sets wins over the preset's. Only the cluster commands
use presets, so the node engine never loads this module or its YAML.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from ..config import fields as f
from ..config.errors import ConfigError

DATA_FILE = "presets.yaml"
# The keys a preset may set: exactly the ones the chart maps (hostPaths.* and the DaemonSets to stop).
NODE_KEYS = frozenset({"cniConfDir", "cniBinDir", "multusConfDir", "socketDir", "cacheDir"})
CLUSTER_KEYS = frozenset({"multusDaemonSets"})
_PRESET_KEYS = {"platform", "config", "switchOff", "comesBack"}


@dataclass(frozen=True)
class Preset:
    name: str
    platform: str  # the platform's name, as its users know it
    config: Mapping[str, Any]  # a partial cleanup config: `node:` paths and `cluster.multusDaemonSets`
    switch_off: str  # how to switch Multus off in the platform, with the platform's own switch
    comes_back: str  # what the platform does when only the DaemonSet is gone

    def apply(self, raw: object) -> dict[str, Any]:
        """The raw cleanup config: the preset under the user's own `raw`. Every key the user sets (a path, the
        list of DaemonSets) wins; the preset fills in the rest. What the user got wrong is left for
        parse_config to name."""
        user = dict(f.section(raw, "config"))
        merged: dict[str, Any] = dict(user)
        for section in ("node", "cluster"):
            theirs = user.get(section)
            if theirs is not None and not isinstance(theirs, Mapping):
                continue
            merged[section] = {**copy.deepcopy(dict(self.config.get(section) or {})), **(theirs or {})}
        return merged

    @property
    def daemonsets(self) -> list[str]:
        cluster = self.config.get("cluster") or {}
        return [f"{d['namespace']}/{d['name']}" for d in cluster.get("multusDaemonSets") or []]

    def warning(self) -> str:
        """The warning a run with this preset starts with."""
        return (f"preset {self.name}: {self.platform} installs Multus itself. Switch it off there first, or it "
                f"comes back during or after the repair: {self.switch_off} Deleting only its DaemonSet is not "
                f"enough: {self.comes_back} (docs/repair.md)")


def load_presets() -> dict[str, Preset]:
    """Every preset of presets.yaml, by name."""
    text = resources.files(__package__).joinpath(DATA_FILE).read_text(encoding="utf-8")
    raw = f.section(yaml.safe_load(text), DATA_FILE)
    f.reject_unknown(raw, {"presets"}, DATA_FILE)
    return {name: _preset(name, value) for name, value in f.section(raw.get("presets"), "presets").items()}


def get_preset(name: str, field: str = "--preset") -> Preset:
    """The preset `name`; an unknown name is a ConfigError naming `field` and the valid names."""
    known = load_presets()
    if name not in known:
        raise ConfigError(field, f"unknown preset {name!r}; valid presets: {', '.join(sorted(known))} "
                                 "(docs/repair.md)")
    return known[name]


def _preset(name: str, raw_value: object) -> Preset:
    where = f"{DATA_FILE}: presets.{name}"
    raw = f.section(raw_value, where)
    f.reject_unknown(raw, _PRESET_KEYS, where)
    config = f.section(raw.get("config"), f"{where}.config")
    f.reject_unknown(config, {"node", "cluster"}, f"{where}.config")
    f.reject_unknown(f.section(config.get("node"), f"{where}.config.node"), set(NODE_KEYS), f"{where}.config.node")
    f.reject_unknown(f.section(config.get("cluster"), f"{where}.config.cluster"), set(CLUSTER_KEYS),
                     f"{where}.config.cluster")
    texts = {key: f.string(raw, key, where, "") for key in ("platform", "switchOff", "comesBack")}
    for key, text in texts.items():
        if not text.strip():
            raise ConfigError(f"{where}.{key}", "must be a non-empty text")
    return Preset(name=name, platform=texts["platform"], config=config, switch_off=texts["switchOff"],
                  comes_back=texts["comesBack"])
