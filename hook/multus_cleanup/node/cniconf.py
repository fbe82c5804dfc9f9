"""Reading CNI network configs the way the container runtime (libcni / go-cni) does."""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass

from ..config import NodeConfig
from .hostfs import HostFS, describe

CONFIG_EXTENSIONS = (".conf", ".conflist", ".json")


@dataclass(frozen=True)
class NetConf:
    host_path: str
    plugin_types: tuple[str, ...]  # in chain order; empty if unreadable
    error: str | None = None  # why the runtime would reject it


def config_names(fs: HostFS, conf_dir: str) -> list[str]:
    """Config file names in load order: the runtime uses the first of these."""
    names = []
    for name in fs.list_dir(conf_dir):
        if not name.endswith(CONFIG_EXTENSIONS):
            continue
        entry = fs.entry(posixpath.join(conf_dir, name))
        if entry is not None and not entry.is_dir:
            names.append(name)
    return names


def read_netconf(fs: HostFS, host_path: str, *, as_name: str | None = None) -> NetConf:
    """Parse a config; `as_name` is the name whose extension decides the format (for a renamed `.old`)."""
    try:
        text = fs.read_text(host_path)
    except OSError as err:
        return NetConf(host_path, (), f"cannot read it: {describe(err)}")
    if text is None:
        return NetConf(host_path, (), "not a readable file (a dangling link?)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        return NetConf(host_path, (), f"not valid JSON: {err.msg} at line {err.lineno}")
    if not isinstance(data, dict):
        return NetConf(host_path, (), "not a JSON object")
    if (as_name or host_path).endswith(".conflist"):
        plugins = data.get("plugins")
        if not isinstance(plugins, list) or not plugins:
            return NetConf(host_path, (), "a .conflist without plugins")
        types = tuple(str(p.get("type", "")) for p in plugins if isinstance(p, dict))
        if len(types) != len(plugins) or not all(types):
            return NetConf(host_path, types, "a plugin without a type")
        return NetConf(host_path, types)
    plugin_type = data.get("type")
    if not isinstance(plugin_type, str) or not plugin_type:
        return NetConf(host_path, (), "no network type (a conflist in a .conf file?)")
    return NetConf(host_path, (plugin_type,))


def references(conf: NetConf, plugin: str) -> bool:
    return plugin in conf.plugin_types


def is_multus_config(cfg: NodeConfig, conf: NetConf) -> bool:
    """Multus's own config: one of its file names, or a first plugin of a Multus type (multus, multus-shim)."""
    name = posixpath.basename(conf.host_path)
    return name in cfg.config_files or bool(conf.plugin_types and conf.plugin_types[0] in cfg.plugin_types)
