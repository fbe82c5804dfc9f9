"""What the node engine cleans: every path and name, with Multus v4 defaults, overridable per platform.

All paths are HOST paths (as seen on the node); the engine reads them under `--host-root`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import fields as f
from .errors import ConfigError

DEFAULT_CNI_CONF_DIR = "/etc/cni/net.d"
DEFAULT_CNI_BIN_DIR = "/opt/cni/bin"


@dataclass(frozen=True)
class NodeConfig:
    cni_conf_dir: str = DEFAULT_CNI_CONF_DIR
    cni_bin_dir: str = DEFAULT_CNI_BIN_DIR
    # Removed whole: Multus's own directories (the autoconfig data dir with the kubeconfig, the thick
    # daemon's socket dir, the per-pod cache).
    multus_conf_dir: str = DEFAULT_CNI_CONF_DIR + "/multus.d"
    socket_dir: str = "/run/multus"
    cache_dir: str = "/var/lib/cni/multus"
    log_file: str | None = None
    # Multus's config files in cni_conf_dir; any config whose plugin type is a Multus type is Multus's too.
    config_files: tuple[str, ...] = ("00-multus.conf", "00-multus.conflist")
    plugin_types: tuple[str, ...] = ("multus", "multus-shim")
    binaries: tuple[str, ...] = ("multus", "multus-shim")
    # passthru ships with Multus but is a generic plugin: removed only when no remaining config uses it.
    passthru_binary: str | None = "passthru"
    conf_temp_files: tuple[str, ...] = ("00-multus.conf.new", "00-multus.conflist.new")
    bin_temp_files: tuple[str, ...] = ("multus.temp*", "multus-shim.temp*", "passthru.temp*", "_multus*")
    restore_renamed_primary: bool = True
    # Exact host paths of further files to remove (files or links, never directories).
    extra_files: tuple[str, ...] = ()

    def to_raw(self) -> dict[str, object]:
        """The `node:` section that parses back to this config (handed to node pods)."""
        raw: dict[str, object] = {}
        for key in sorted(_KEYS):
            value = getattr(self, _snake(key))
            raw[key] = list(value) if isinstance(value, tuple) else value
        return raw

    @property
    def whole_dirs(self) -> tuple[tuple[str, str], ...]:
        """(field name, host path) of each directory removed whole."""
        return (("multusConfDir", self.multus_conf_dir), ("socketDir", self.socket_dir),
                ("cacheDir", self.cache_dir))


_KEYS = {
    "cniConfDir", "cniBinDir", "multusConfDir", "socketDir", "cacheDir", "logFile", "configFiles",
    "pluginTypes", "binaries", "passthruBinary", "confTempFiles", "binTempFiles", "restoreRenamedPrimary",
    "extraFiles",
}


def _snake(key: str) -> str:
    return "".join("_" + ch.lower() if ch.isupper() else ch for ch in key)


def _inside(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith(ancestor.rstrip("/") + "/")


def parse_node_config(raw_value: object, field: str = "node") -> NodeConfig:
    raw: Mapping[str, Any] = f.section(raw_value, field)
    f.reject_unknown(raw, _KEYS, field)
    d = NodeConfig()
    conf_dir = f.host_path(raw.get("cniConfDir", d.cni_conf_dir), f"{field}.cniConfDir")
    passthru = raw.get("passthruBinary", d.passthru_binary)
    cfg = NodeConfig(
        cni_conf_dir=conf_dir,
        cni_bin_dir=f.host_path(raw.get("cniBinDir", d.cni_bin_dir), f"{field}.cniBinDir"),
        # The data dir follows a custom conf dir unless set explicitly.
        multus_conf_dir=f.host_path(raw.get("multusConfDir", posixpath.join(conf_dir, "multus.d")),
                                    f"{field}.multusConfDir"),
        socket_dir=f.host_path(raw.get("socketDir", d.socket_dir), f"{field}.socketDir"),
        cache_dir=f.host_path(raw.get("cacheDir", d.cache_dir), f"{field}.cacheDir"),
        log_file=f.optional_host_path(raw, "logFile", field, d.log_file),
        config_files=f.name_list(raw, "configFiles", field, d.config_files),
        plugin_types=f.name_list(raw, "pluginTypes", field, d.plugin_types),
        binaries=f.name_list(raw, "binaries", field, d.binaries),
        passthru_binary=None if passthru in (None, "") else f.file_name(passthru, f"{field}.passthruBinary"),
        conf_temp_files=f.name_list(raw, "confTempFiles", field, d.conf_temp_files, glob=True),
        bin_temp_files=f.name_list(raw, "binTempFiles", field, d.bin_temp_files, glob=True),
        restore_renamed_primary=f.boolean(raw, "restoreRenamedPrimary", field, d.restore_renamed_primary),
        extra_files=tuple(
            f.host_path(item, f"{field}.extraFiles[{i}]")
            for i, item in enumerate(_list(raw, "extraFiles", field))
        ),
    )
    _check_whole_dirs(cfg, field)
    return cfg


def _list(raw: Mapping[str, Any], key: str, field: str) -> list[object]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"{field}.{key}", f"must be a list, got {value!r}")
    return value


def _check_whole_dirs(cfg: NodeConfig, field: str) -> None:
    """A directory removed whole must be Multus's own: named for it and holding no other configured path."""
    others = {"cniConfDir": cfg.cni_conf_dir, "cniBinDir": cfg.cni_bin_dir}
    for key, path in cfg.whole_dirs:
        if "multus" not in posixpath.basename(path):
            raise ConfigError(f"{field}.{key}", f"refusing to remove {path!r} whole: a directory removed whole "
                                                "must be Multus's own, with 'multus' in its name")
        for other_key, other in others.items():
            if _inside(other, path):
                raise ConfigError(f"{field}.{key}", f"{path!r} contains {field}.{other_key} ({other!r}); "
                                                    "removing it would delete other CNIs' files")


def check_backup_dir(cfg: NodeConfig, backup_dir: str) -> None:
    """--backup-dir must not land where a runtime or Multus would read it, nor inside what is removed."""
    path = f.host_path(backup_dir, "--backup-dir")
    for key, place in (("cniConfDir", cfg.cni_conf_dir), ("cniBinDir", cfg.cni_bin_dir), *cfg.whole_dirs):
        if path == place or path.startswith(place + "/"):
            raise ConfigError("--backup-dir", f"{path} is inside node.{key} ({place}); choose a directory "
                                              "outside the CNI and Multus directories, e.g. /var/backups/multus")
