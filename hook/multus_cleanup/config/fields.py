"""Small typed readers for YAML mappings: each check names the field it rejects."""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError


def section(raw: object, field: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(field, f"must be a mapping, got {type(raw).__name__}")
    for key in raw:
        if not isinstance(key, str):
            raise ConfigError(field, f"keys must be strings, got {key!r}")
    return raw


def reject_unknown(raw: Mapping[str, Any], known: set[str], field: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        where = f"{field}." if field else ""
        hint = ", ".join(sorted(known))
        raise ConfigError(f"{where}{unknown[0]}", f"unknown key (known keys here: {hint})")


def boolean(raw: Mapping[str, Any], key: str, field: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{field}.{key}", f"must be true or false, got {value!r}")
    return value


def integer(raw: Mapping[str, Any], key: str, field: str, default: int, minimum: int, maximum: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ConfigError(f"{field}.{key}", f"must be an integer from {minimum} to {maximum}, got {value!r}")
    return value


def string(raw: Mapping[str, Any], key: str, field: str, default: str, choices: tuple[str, ...] = ()) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{field}.{key}", f"must be a string, got {value!r}")
    if choices and value not in choices:
        raise ConfigError(f"{field}.{key}", f"must be one of {', '.join(choices)}, got {value!r}")
    return value


def host_path(value: object, field: str) -> str:
    """An absolute, normalised host path: no `..`, no `.`, no empty components, not `/` itself."""
    if not isinstance(value, str) or not value:
        raise ConfigError(field, f"must be an absolute host path, got {value!r}")
    if not value.startswith("/"):
        raise ConfigError(field, f"must be an absolute host path (starting with /), got {value!r}")
    parts = value.split("/")[1:]
    if any(part in ("..", ".") for part in parts):
        raise ConfigError(field, f"must not contain '.' or '..' components, got {value!r}")
    if "\0" in value:
        raise ConfigError(field, "must not contain NUL bytes")
    normal = posixpath.normpath(value)
    if normal == "/":
        raise ConfigError(field, "must not be the root directory /")
    return normal


def optional_host_path(raw: Mapping[str, Any], key: str, field: str, default: str | None) -> str | None:
    value = raw.get(key, default)
    if value is None or value == "":
        return None
    return host_path(value, f"{field}.{key}")


def file_name(value: object, field: str, *, glob: bool = False) -> str:
    """A plain name inside one directory: no `/`, not `.` or `..`; globs only where allowed."""
    if not isinstance(value, str) or not value:
        raise ConfigError(field, f"must be a non-empty file name, got {value!r}")
    if "/" in value or value in (".", "..") or "\0" in value:
        raise ConfigError(field, f"must be a plain file name without '/' or '..', got {value!r}")
    if not glob and any(ch in value for ch in "*?["):
        raise ConfigError(field, f"must be an exact file name, not a pattern, got {value!r}")
    if glob and fnmatch.translate(value) == fnmatch.translate("*"):
        raise ConfigError(field, f"a pattern must name Multus's files, not match everything: {value!r}")
    return value


def name_list(raw: Mapping[str, Any], key: str, field: str, default: tuple[str, ...], *, glob: bool = False
              ) -> tuple[str, ...]:
    value = raw.get(key, list(default))
    if not isinstance(value, list):
        raise ConfigError(f"{field}.{key}", f"must be a list of file names, got {value!r}")
    return tuple(file_name(item, f"{field}.{key}[{i}]", glob=glob) for i, item in enumerate(value))


def string_list(raw: Mapping[str, Any], key: str, field: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = raw.get(key, list(default))
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ConfigError(f"{field}.{key}", f"must be a list of non-empty strings, got {value!r}")
    return tuple(value)
