"""Loading catalogs from built-in names, TOML, YAML, JSON files or dicts, with clear errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .catalog import Catalog
from .errors import CatalogError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def builtin_names() -> list[str]:
    """Names of the catalogs shipped in ``quota/catalogs``."""
    root = resources.files("quota") / "catalogs"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def load_catalog(source: str | Path | Mapping[str, Any]) -> Catalog:
    """Load and validate a catalog; CatalogError names the file, plan, limit and field."""
    if isinstance(source, Mapping):
        return _validate(dict(source), "catalog", "custom")
    if isinstance(source, str) and source in builtin_names():
        text = (resources.files("quota") / "catalogs" / f"{source}.toml").read_text("utf-8")
        return _validate(_parse(text, ".toml", source), f"built-in catalog {source!r}", source)
    path = Path(source)
    if not path.is_file():
        raise CatalogError(
            f"no catalog named {str(source)!r}: not a built-in ({', '.join(builtin_names())})"
            " and no such file"
        )
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"cannot read plan file {str(path)!r}: {exc}") from None
    data = _parse(text, path.suffix.lower(), str(path))
    return _validate(data, f"plan file {str(path)!r}", path.stem)


def _parse(text: str, suffix: str, where: str) -> dict[str, Any]:
    try:
        if suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:  # pragma: no cover - depends on the install
                raise CatalogError(
                    "YAML plan files need PyYAML: pip install 'quota[yaml]'"
                ) from None
            data = yaml.safe_load(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise CatalogError(
                f"{where}: unknown plan file type {suffix!r}; use .toml, .yaml, .json"
            )
    except CatalogError:
        raise
    except Exception as exc:  # each parser has its own error class; all mean "malformed"
        raise CatalogError(f"{where} is not valid {suffix.lstrip('.').upper()}: {exc}") from None
    if not isinstance(data, dict):
        raise CatalogError(f"{where} must hold a table of settings, got {type(data).__name__}")
    return data


def _validate(data: dict[str, Any], where: str, name: str) -> Catalog:
    data.setdefault("name", name)
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(err, data) for err in exc.errors()]
        raise CatalogError(
            f"{where} is invalid:\n" + "\n".join(f"  - {x}" for x in lines)
        ) from None


def _describe(err: Any, data: dict[str, Any]) -> str:
    """One error as 'plan 'basic', limit 'rpm', field 'rate': message'."""
    loc = list(err["loc"])
    parts: list[str] = []
    node: Any = data
    i = 0
    while i < len(loc):
        key = loc[i]
        if key == "plans" and i + 1 < len(loc):
            parts.append(f"plan {loc[i + 1]!r}")
            node = _get(_get(node, "plans"), loc[i + 1])
            i += 2
            continue
        if key == "limits" and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            item = _get(_get(node, "limits"), loc[i + 1])
            name = item.get("name") if isinstance(item, dict) else None
            parts.append(f"limit {name!r}" if name else f"limit #{loc[i + 1] + 1}")
            node = item
            i += 2
            continue
        if isinstance(key, str) and not key.startswith(("function-", "model")):
            parts.append(f"field {'.'.join(str(k) for k in loc[i:])!r}")
            break
        i += 1
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field (check its spelling)"
    elif err["type"] == "missing":
        msg = "required field is missing"
    return f"{', '.join(parts)}: {msg}" if parts else msg


def _get(node: Any, key: Any) -> Any:
    if isinstance(node, dict):
        return node.get(key)
    if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
        return node[key]
    return None
