"""Find what Multus left on a node and turn it into ordered actions.

Order (multus-footprint.md): restore a renamed primary config first, then remove Multus's config, then
`multus.d`, then binaries and caches. At no point does the node hold a Multus config whose binary is gone,
and a kill between any two steps leaves a state that a re-run finishes.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
from dataclasses import dataclass
from enum import IntEnum

from ..config import NodeConfig
from .cniconf import CONFIG_EXTENSIONS, config_names, is_multus_config, read_netconf
from .hostfs import Entry, HostFS

# Cilium with `cni.exclusive` renames every other CNI config to `<name>.cilium_bak`, and renames them back
# when it is uninstalled: a Multus config left there would come back after Multus is gone.
FOREIGN_BACKUP_SUFFIXES = (".cilium_bak",)


class Phase(IntEnum):
    RESTORE_PRIMARY = 1
    MULTUS_CONFIG = 2
    MULTUS_DATA_DIR = 3
    BINARIES_AND_CACHES = 4


@dataclass(frozen=True)
class Action:
    phase: Phase
    entry: Entry
    restore_to: str | None = None  # set for a restore: the plain name to rename back to
    # An empty Multus directory breaks nothing (and may be the cleanup pod's own mount point, which
    # cannot be removed from inside the pod); it is removed when possible but never makes a node unclean.
    harmless: bool = False

    @property
    def is_restore(self) -> bool:
        return self.restore_to is not None


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    problems: tuple[str, ...]  # reasons the plan must not run at all (nothing is touched)

    @property
    def found(self) -> list[str]:
        return [a.entry.host_path for a in self.actions]

    @property
    def harmful(self) -> list[str]:
        return [a.entry.host_path for a in self.actions if not a.harmless]


def make_plan(fs: HostFS, cfg: NodeConfig) -> Plan:
    problems: list[str] = []
    conf_dir, bin_dir = cfg.cni_conf_dir, cfg.cni_bin_dir
    actions: list[Action] = []

    multus_configs, other_configs = _configs(fs, cfg)
    conf_temps = _matching(fs, conf_dir, cfg.conf_temp_files, exclude=set()) + _multus_backups(fs, cfg)
    data_dir = fs.entry(cfg.multus_conf_dir)
    binaries = [e for e in (fs.entry(posixpath.join(bin_dir, b)) for b in cfg.binaries) if e]
    bin_temps = _matching(fs, bin_dir, cfg.bin_temp_files, exclude=set(cfg.binaries))
    caches = [e for e in (fs.entry(p) for p in (cfg.socket_dir, cfg.cache_dir, cfg.log_file) if p) if e]
    extras: list[Entry] = []
    for i, path in enumerate(cfg.extra_files):
        extra = fs.entry(path)
        if extra is not None and extra.is_dir:
            problems.append(f"node.extraFiles[{i}]: {path} is a directory; extraFiles removes files only")
        elif extra is not None:
            extras.append(extra)

    multus_present = bool(multus_configs or data_dir or binaries)
    restores, restore_problem = _renamed_primaries(fs, cfg, multus_configs, other_configs, multus_present)
    if restore_problem:
        problems.append(restore_problem)
    actions += [Action(Phase.RESTORE_PRIMARY, old, restore_to=plain) for old, plain in restores]
    remaining = other_configs + [plain for _old, plain in restores]

    actions += [Action(Phase.MULTUS_CONFIG, e) for e in multus_configs + conf_temps]
    if data_dir:
        actions.append(Action(Phase.MULTUS_DATA_DIR, data_dir, harmless=_is_empty_dir(data_dir)))
    passthru = _unused_passthru(fs, cfg, remaining, restores)
    actions += [Action(Phase.BINARIES_AND_CACHES, e, harmless=_is_empty_dir(e))
                for e in binaries + bin_temps + passthru + caches + extras]
    return Plan(tuple(sorted(actions, key=lambda a: a.phase)), tuple(problems))


def make_restore_plan(fs: HostFS, cfg: NodeConfig) -> Plan:
    """Only the first phase of make_plan: the primary config that thin Multus's `--rename-conf-file` renamed
    to `<name>.old`, to rename back while Multus's own files stay. A restarted thin Multus looks for its
    primary among the plain names only, finds none and exits, again and again (CrashLoopBackOff)."""
    multus_configs, other_configs = _configs(fs, cfg)
    restores, problem = _renamed_primaries(fs, cfg, multus_configs, other_configs, bool(multus_configs))
    return Plan(tuple(Action(Phase.RESTORE_PRIMARY, old, restore_to=plain) for old, plain in restores),
                (problem,) if problem else ())


def _configs(fs: HostFS, cfg: NodeConfig) -> tuple[list[Entry], list[str]]:
    """The config dir's CNI configs the runtime would consider: Multus's entries, and the others' paths."""
    multus_configs: list[Entry] = []
    other_configs: list[str] = []
    for name in config_names(fs, cfg.cni_conf_dir):
        path = posixpath.join(cfg.cni_conf_dir, name)
        entry = fs.entry(path)
        assert entry is not None
        if is_multus_config(cfg, read_netconf(fs, path)):
            multus_configs.append(entry)
        else:
            other_configs.append(path)
    return multus_configs, other_configs


def _is_empty_dir(entry: Entry) -> bool:
    return entry.is_dir and not any(entry.real.iterdir())


def _matching(fs: HostFS, host_dir: str, patterns: tuple[str, ...], exclude: set[str]) -> list[Entry]:
    found = []
    for name in fs.list_dir(host_dir):
        if name not in exclude and any(fnmatch.fnmatchcase(name, p) for p in patterns):
            entry = fs.entry(posixpath.join(host_dir, name))
            if entry is not None:
                found.append(entry)
    return found


def _multus_backups(fs: HostFS, cfg: NodeConfig) -> list[Entry]:
    """Multus configs that another CNI renamed aside (FOREIGN_BACKUP_SUFFIXES); other CNIs' backups stay."""
    found = []
    for name in fs.list_dir(cfg.cni_conf_dir):
        for suffix in FOREIGN_BACKUP_SUFFIXES:
            plain = name.removesuffix(suffix)
            if plain == name or not plain.endswith(CONFIG_EXTENSIONS):
                continue
            path = posixpath.join(cfg.cni_conf_dir, name)
            entry = fs.entry(path)
            if entry is not None and not entry.is_dir and is_multus_config(cfg, read_netconf(fs, path, as_name=plain)):
                found.append(entry)
    return found


def _renamed_primaries(fs: HostFS, cfg: NodeConfig, multus_configs: list[Entry], other_configs: list[str],
                       multus_present: bool) -> tuple[list[tuple[Entry, str]], str | None]:
    """Primary configs that `--rename-conf-file` renamed to `<name>.old`, to rename back.

    Only where it cannot make things worse: the plain name is free, the file is a valid non-Multus CNI
    config, and Multus is still on the node or the node has no usable config at all.
    """
    if not cfg.restore_renamed_primary or not (multus_present or not other_configs):
        return [], None
    candidates: list[tuple[Entry, str]] = []
    for name in fs.list_dir(cfg.cni_conf_dir):
        plain = name.removesuffix(".old")
        if plain == name or not plain.endswith(CONFIG_EXTENSIONS):
            continue
        old_path, plain_path = posixpath.join(cfg.cni_conf_dir, name), posixpath.join(cfg.cni_conf_dir, plain)
        old = fs.entry(old_path)
        if old is None or old.is_dir or fs.entry(plain_path) is not None:
            continue
        conf = read_netconf(fs, old_path, as_name=plain)
        if conf.error or is_multus_config(cfg, conf):
            continue
        candidates.append((old, plain_path))
    if len(candidates) <= 1:
        return candidates, None
    delegates = _multus_delegates(fs, multus_configs)
    chosen = [c for c in candidates if _parsed(fs, c[0].host_path) in delegates]
    if len(chosen) == 1:
        return chosen, None
    names = ", ".join(c[0].host_path for c in candidates)
    return [], (f"several renamed primary configs ({names}) and none is recognisably the one Multus renamed; "
                "rename the right one back by hand (drop '.old'), then re-run")


def _parsed(fs: HostFS, host_path: str) -> object:
    text = fs.read_text(host_path)
    try:
        return json.loads(text) if text is not None else None
    except json.JSONDecodeError:
        return None


def _multus_delegates(fs: HostFS, multus_configs: list[Entry]) -> list[object]:
    delegates: list[object] = []
    for entry in multus_configs:
        data = _parsed(fs, entry.host_path)
        plugins = data.get("plugins") if isinstance(data, dict) else None
        for conf in [data] + (plugins if isinstance(plugins, list) else []):
            if isinstance(conf, dict) and isinstance(conf.get("delegates"), list):
                delegates += conf["delegates"]
    return delegates


def _unused_passthru(fs: HostFS, cfg: NodeConfig, remaining: list[str],
                     restores: list[tuple[Entry, str]]) -> list[Entry]:
    if not cfg.passthru_binary:
        return []
    entry = fs.entry(posixpath.join(cfg.cni_bin_dir, cfg.passthru_binary))
    if entry is None:
        return []
    sources = {plain: old.host_path for old, plain in restores}
    for path in remaining:
        conf = read_netconf(fs, sources.get(path, path), as_name=path)
        if cfg.passthru_binary in conf.plugin_types:
            return []
    return [entry]
