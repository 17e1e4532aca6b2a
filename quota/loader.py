"""Reading catalogs: built-in names, TOML, YAML and JSON files or dicts, as plain data.

This module turns text into a dict and says where it came from; ``Catalog.load`` validates it
(``quota.validation`` words pydantic's errors), so the loader needs nothing of the model.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import CatalogError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def builtin_names() -> list[str]:
    """Names of the catalogs shipped in ``quota/catalogs``."""
    root = resources.files("quota") / "catalogs"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))


def read_catalog(source: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """(data, where) of a catalog source: the parsed table, with its ``name`` defaulted (the
    built-in's name, the file's stem, ``custom``), and a phrase naming it for errors.
    CatalogError when it cannot be found, read or parsed."""
    if isinstance(source, Mapping):
        return _named(dict(source), "custom"), "catalog"
    if isinstance(source, str) and source in builtin_names():
        text = (resources.files("quota") / "catalogs" / f"{source}.toml").read_text("utf-8")
        return _named(_parse(text, ".toml", source), source), f"built-in catalog {source!r}"
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
    return _named(data, path.stem), f"plan file {str(path)!r}"


def _named(data: dict[str, Any], name: str) -> dict[str, Any]:
    data.setdefault("name", name)
    return data


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
