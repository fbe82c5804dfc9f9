"""PATCH bodies: JSON merge patch (RFC 7386), a strategic-merge approximation, JSON patch (RFC 6902).

Strategic merge here = merge patch + list merging by the upstream ``patchMergeKey`` of the commonly
patched list fields (looked up by field name, not by full schema path), ``$patch: delete|replace``
inside lists and maps, ``metadata.finalizers`` merged as a set, and ``$setElementOrder``/``$retainKeys``
directives dropped. Lists without a known merge key are replaced, as upstream does for atomic lists.
"""

from __future__ import annotations

import copy
from typing import Any

# Field name -> merge key of its items (from the upstream Go struct tags).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}
# Lists of scalars that strategic merge treats as sets (patchStrategy=merge).
MERGED_SCALAR_LISTS = frozenset({"finalizers"})


class PatchError(ValueError):
    """A patch that cannot be applied (served as 422 or 400)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any, field: str = "") -> Any:
    if isinstance(patch, dict):
        if patch.get("$patch") == "replace":
            return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
        if patch.get("$patch") == "delete":
            return None
        result = dict(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if key.startswith(("$setElementOrder/", "$retainKeys", "$deleteFromPrimitiveList/")):
                if key.startswith("$deleteFromPrimitiveList/"):
                    name = key.split("/", 1)[1]
                    result[name] = [v for v in result.get(name) or [] if v not in value]
                continue
            if value is None:
                result.pop(key, None)
                continue
            merged = strategic_merge_patch(result.get(key), value, key)
            if merged is None and isinstance(value, dict) and value.get("$patch") == "delete":
                result.pop(key, None)
            else:
                result[key] = merged
        return result
    if isinstance(patch, list):
        return _merge_list(target if isinstance(target, list) else [], patch, field)
    return copy.deepcopy(patch)


def _merge_list(target: list[Any], patch: list[Any], field: str) -> list[Any]:
    if field in MERGED_SCALAR_LISTS:
        result = list(target)
        for item in patch:
            if item not in result:
                result.append(copy.deepcopy(item))
        return result
    key = MERGE_KEYS.get(field)
    if key is None or not all(isinstance(item, dict) for item in patch):
        if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
            return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
        return copy.deepcopy(patch)
    if any(item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(i) for i in patch if "$patch" not in i]
    result = [copy.deepcopy(item) for item in target]
    for item in patch:
        if key not in item:
            raise PatchError(f"map: {item!r} does not contain declared merge key: {key}")
        index = next((i for i, old in enumerate(result) if isinstance(old, dict) and old.get(key) == item[key]),
                     None)
        if item.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
        elif index is None:
            result.append(strategic_merge_patch({}, item, field))
        else:
            result[index] = strategic_merge_patch(result[index], item, field)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer: {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, dict):
            if part not in doc:
                raise PatchError(f"path not found: {part!r}")
            doc = doc[part]
        elif isinstance(doc, list):
            try:
                doc = doc[int(part)]
            except (ValueError, IndexError) as exc:
                raise PatchError(f"bad list index: {part!r}") from exc
        else:
            raise PatchError(f"cannot descend into {part!r}")
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902: add, remove, replace, move, copy, test."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"malformed operation: {op!r}")
        kind, parts = op["op"], _pointer(op["path"])
        if kind == "test":
            if _walk(doc, parts) != op.get("value"):
                raise PatchError(f"test failed at {op['path']}")
            continue
        if kind in ("move", "copy"):
            source = _pointer(op["from"])
            value = copy.deepcopy(_walk(doc, source))
            if kind == "move":
                doc = _remove(doc, source)
            doc = _add(doc, parts, value)
        elif kind == "add":
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            doc = _remove(doc, parts)
        elif kind == "replace":
            _walk(doc, parts)  # must exist
            doc = _remove(doc, parts)
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        else:
            raise PatchError(f"unknown operation: {kind!r}")
    return doc


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            try:
                index = int(last)
            except ValueError as exc:
                raise PatchError(f"bad list index: {last!r}") from exc
            if not 0 <= index <= len(parent):
                raise PatchError(f"list index out of range: {index}")
            parent.insert(index, value)
    else:
        raise PatchError("cannot add into a scalar")
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    if not parts:
        return None
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    try:
        if isinstance(parent, dict):
            del parent[last]
        elif isinstance(parent, list):
            del parent[int(last)]
        else:
            raise PatchError("cannot remove from a scalar")
    except (KeyError, ValueError, IndexError) as exc:
        raise PatchError(f"path not found: {last!r}") from exc
    return doc


def apply_patch(target: dict[str, Any], body: Any, content_type: str) -> dict[str, Any]:
    content_type = content_type.split(";")[0].strip().lower()
    if content_type == "application/json-patch+json":
        result = json_patch(target, body)
    elif content_type == "application/merge-patch+json":
        result = merge_patch(target, body)
    elif content_type == "application/strategic-merge-patch+json":
        result = strategic_merge_patch(target, body)
    else:
        raise PatchError(f"the server does not support patch content type {content_type!r}")
    if not isinstance(result, dict):
        raise PatchError("the patch did not produce an object")
    return result
