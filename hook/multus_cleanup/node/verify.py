"""What a new pod on this node would meet: which config the runtime loads, and the error it would hit."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from ..config import NodeConfig
from .cniconf import NetConf, config_names, is_multus_config, read_netconf
from .hostfs import HostFS


@dataclass(frozen=True)
class Verdict:
    loaded: str | None  # host path of the config the runtime loads, or None
    is_multus: bool
    pod_error: str | None  # the error new pods would meet, in the runtime's words where we know them


def inspect(fs: HostFS, cfg: NodeConfig) -> Verdict:
    names = config_names(fs, cfg.cni_conf_dir)
    if not names:
        return Verdict(None, False, f"no CNI config in {cfg.cni_conf_dir}: the runtime has no network for new "
                                    "pods (\"no networks found\"); the primary CNI must write its config")
    conf = read_netconf(fs, posixpath.join(cfg.cni_conf_dir, names[0]))
    multus = is_multus_config(cfg, conf)
    if conf.error:
        return Verdict(conf.host_path, multus, f"the runtime cannot load {conf.host_path}: {conf.error}")
    missing = [t for t in conf.plugin_types if not fs.is_executable_file(posixpath.join(cfg.cni_bin_dir, t))]
    if missing:
        return Verdict(conf.host_path, multus,
                       f'failed to find plugin "{missing[0]}" in path [{cfg.cni_bin_dir}]')
    if multus:
        return Verdict(conf.host_path, True, _multus_runtime_error(fs, cfg, conf))
    return Verdict(conf.host_path, False, None)


def _multus_runtime_error(fs: HostFS, cfg: NodeConfig, conf: NetConf) -> str:
    """Multus's config is first and its binary is there: pods depend on Multus's runtime parts."""
    if conf.plugin_types[0] == "multus-shim":
        sock = posixpath.join(cfg.socket_dir, "multus.sock")
        if fs.entry(sock) is None:
            return f"dial unix {sock}: connect: no such file or directory (the Multus daemon is not running)"
        return (f"new pods go through Multus; without its daemon they fail with "
                f"dial unix {sock}: connect: connection refused")
    kubeconfig = posixpath.join(cfg.multus_conf_dir, "multus.kubeconfig")
    if fs.entry(kubeconfig) is None:
        return f"failed to get context for the kubeconfig {kubeconfig}"
    return ("new pods go through Multus; once its ServiceAccount token is gone they fail with Unauthorized "
            f"(kubeconfig {kubeconfig})")
