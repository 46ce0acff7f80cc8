"""A small JSON Schema validator for the subset the bundle manifest schema uses.

Supported keywords: ``type``, ``const``, ``enum``, ``required``, ``properties``,
``additionalProperties`` (bool or schema), ``minProperties``, ``items``, ``minItems``,
``maxItems``, ``minLength``, ``pattern``, ``minimum``, ``maximum`` and local ``$ref``
(``#/$defs/...``). Any other keyword raises, so the schema cannot silently outgrow it.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).resolve().parent / "data" / "manifest.schema.json"
_IGNORED = {"$schema", "$id", "$defs", "title", "description"}
_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
}


@cache
def manifest_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


def _is_type(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[name])


def errors(value: Any, schema: dict[str, Any], root: dict[str, Any], at: str = "$") -> list[str]:
    """Every violation of ``schema`` by ``value`` as ``"path: message"`` lines."""
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/$defs/"):
            raise ValueError(f"unsupported $ref {ref}")
        return errors(value, root["$defs"][ref.removeprefix("#/$defs/")], root, at)
    found: list[str] = []
    for keyword, arg in schema.items():
        if keyword in _IGNORED:
            continue
        if keyword == "type":
            names = [arg] if isinstance(arg, str) else arg
            if not any(_is_type(value, n) for n in names):
                return [f"{at}: expected {' or '.join(names)}, got {type(value).__name__}"]
        elif keyword == "const":
            if value != arg:
                found.append(f"{at}: expected {arg!r}")
        elif keyword == "enum":
            if value not in arg:
                found.append(f"{at}: {value!r} is not one of {arg}")
        elif keyword == "required":
            if isinstance(value, dict):
                found += [f"{at}: missing {k!r}" for k in arg if k not in value]
        elif keyword == "properties":
            if isinstance(value, dict):
                for k, sub in arg.items():
                    if k in value:
                        found += errors(value[k], sub, root, f"{at}.{k}")
        elif keyword == "additionalProperties":
            if isinstance(value, dict):
                extra = [k for k in value if k not in schema.get("properties", {})]
                if arg is False:
                    found += [f"{at}: unexpected field {k!r}" for k in extra]
                elif isinstance(arg, dict):
                    for k in extra:
                        found += errors(value[k], arg, root, f"{at}.{k}")
        elif keyword == "minProperties":
            if isinstance(value, dict) and len(value) < arg:
                found.append(f"{at}: needs at least {arg} entries")
        elif keyword == "items":
            if isinstance(value, list):
                for i, item in enumerate(value):
                    found += errors(item, arg, root, f"{at}[{i}]")
        elif keyword == "minItems":
            if isinstance(value, list) and len(value) < arg:
                found.append(f"{at}: needs at least {arg} items")
        elif keyword == "maxItems":
            if isinstance(value, list) and len(value) > arg:
                found.append(f"{at}: at most {arg} items")
        elif keyword == "minLength":
            if isinstance(value, str) and len(value) < arg:
                found.append(f"{at}: shorter than {arg}")
        elif keyword == "pattern":
            if isinstance(value, str) and re.search(arg, value) is None:
                found.append(f"{at}: {value!r} does not match {arg}")
        elif keyword == "minimum":
            if _is_type(value, "number") and value < arg:
                found.append(f"{at}: {value} < {arg}")
        elif keyword == "maximum":
            if _is_type(value, "number") and value > arg:
                found.append(f"{at}: {value} > {arg}")
        else:
            raise ValueError(f"schema keyword {keyword!r} is not supported by this validator")
    return found


def manifest_errors(manifest: Any) -> list[str]:
    """Violations of the bundle manifest schema (empty when valid)."""
    schema = manifest_schema()
    return errors(manifest, schema, schema)
