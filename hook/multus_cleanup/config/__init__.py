"""The one config model shared by the node engine and the orchestrator, loaded from YAML (or JSON)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from . import fields as f
from .cluster import ClusterConfig, parse_cluster_config
from .errors import ConfigError
from .node import NodeConfig, parse_node_config

__all__ = ["CONFIG_ENV", "CleanupConfig", "ClusterConfig", "ConfigError", "NodeConfig", "load_config", "parse_config",
           "read_config"]


@dataclass(frozen=True)
class CleanupConfig:
    node: NodeConfig = field(default_factory=NodeConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)


def parse_config(raw_value: object) -> CleanupConfig:
    raw = f.section(raw_value, "config")
    f.reject_unknown(raw, {"node", "cluster"}, "")
    return CleanupConfig(node=parse_node_config(raw.get("node")), cluster=parse_cluster_config(raw.get("cluster")))


CONFIG_ENV = "MULTUS_CLEANUP_CONFIG"


def load_config(path: str | None, env_text: str | None = None) -> CleanupConfig:
    """Load the config from a file, else from the text of $MULTUS_CLEANUP_CONFIG (how node pods get theirs),
    else the built-in Multus v4 defaults."""
    if path is None and not env_text:
        return CleanupConfig()
    return parse_config(read_config(path, env_text))


def read_config(path: str | None, env_text: str | None = None) -> object:
    """The config as read, not yet checked: from a file, else from the text of $MULTUS_CLEANUP_CONFIG; None
    when there is neither (a repair preset goes under it before parse_config checks the whole).

    The text is YAML; JSON text (what the orchestrator gives node pods, and JSON is YAML) is parsed with the
    standard library, so `multus-cleanup node` on a node never loads a YAML parser. The lazy `import yaml`
    below is the one edge the import contract (pyproject.toml) allows between the engine's modules and yaml."""
    if path is None and not env_text:
        return None
    if path is not None:
        source = path
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError("--config", f"cannot read {path}: {err.strerror}") from err
    else:
        source, text = f"${CONFIG_ENV}", env_text or ""
    if text.lstrip().startswith("{"):
        try:
            raw: object = json.loads(text)
            return raw
        except json.JSONDecodeError:
            pass  # a YAML flow mapping, not JSON: YAML reads it
    import yaml  # lazily: only YAML text needs a YAML parser

    try:
        loaded: object = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError("--config", f"{source} is not valid YAML: {err}") from err
    return loaded
