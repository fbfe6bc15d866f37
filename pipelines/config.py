"""Load a pipeline's config: dataclass defaults <- YAML file <- ``key.sub=value`` overrides.

OmegaConf checks that every key exists and every value has the declared type; the dataclasses'
``__post_init__`` then checks allowed values. The resolved config is saved beside every run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from components.errors import ConfigError

ConfigT = TypeVar("ConfigT")


def load_config(
    schema: type[ConfigT], path: Path | None = None, overrides: list[str] = ()
) -> ConfigT:
    """Merge the YAML at ``path`` and the dotted overrides into ``schema``'s defaults."""
    try:
        merged = OmegaConf.structured(schema)
        if path is not None:
            if not Path(path).is_file():
                raise ConfigError(f"config file {path} does not exist")
            merged = OmegaConf.merge(merged, OmegaConf.load(path))
        bad = [item for item in overrides if "=" not in item]
        if bad:
            raise ConfigError(f"overrides must look like key.sub=value, got {bad}")
        merged = OmegaConf.merge(merged, OmegaConf.from_dotlist(list(overrides)))
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        raise ConfigError(f"invalid config{f' in {path}' if path else ''}: {error}") from error


def split_overrides(text: str) -> list[str]:
    """``"a=1 b=[1, 2] c={x: y}"`` -> ``["a=1", "b=[1, 2]", "c={x: y}"]``: spaces split items
    except inside brackets, braces or quotes, so ``make ... SET=`` can carry YAML lists and maps."""
    items, current, closers, quote = [], [], [], None
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{":
            closers.append("]" if char == "[" else "}")
        elif closers and char == closers[-1]:
            closers.pop()
        elif char.isspace() and not closers:
            items.append("".join(current))
            current = []
            continue
        current.append(char)
    if quote or closers:
        raise ConfigError(f"unbalanced {quote or closers[-1]!r} in overrides {text!r}")
    return [item for item in [*items, "".join(current)] if item]


def with_overrides(config: ConfigT, overrides: dict[str, Any]) -> ConfigT:
    """A copy of ``config`` with ``{"model.units": 32, ...}`` applied and validated again."""
    try:
        merged = OmegaConf.structured(config)
        for key, value in overrides.items():
            OmegaConf.update(merged, key, value, merge=False)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        raise ConfigError(f"cannot apply {overrides} to the config: {error}") from error


def to_yaml(config: Any) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(config))


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train.epochs": 5, ...}``: the form MLflow params and comparisons want."""
    flat: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        key = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(value):
            flat.update(flatten(value, f"{key}."))
        elif isinstance(value, list) and any(map(dataclasses.is_dataclass, value)):
            flat[key] = [dataclasses.asdict(item) for item in value]  # e.g. the joins of a CSV
        else:
            flat[key] = value
    return flat


class UndeclaredSectionError(ConfigError, AttributeError):
    """A stage read a config section it did not declare (an AttributeError too, so ``hasattr``
    and ``getattr(..., default)`` keep working)."""


def narrowed(config: Any, sections: tuple[str, ...], reader: str) -> Any:
    """A dataclass holding only ``sections`` of ``config``: what the stage ``reader`` declared.

    Reading any other section raises ``UndeclaredSectionError``, so a stage cannot depend on a
    value that is not part of its cache key.
    """
    unknown = [name for name in sections if not hasattr(config, name)]
    if unknown:
        raise ConfigError(
            f"stage {reader} declares config sections {unknown} that "
            f"{type(config).__name__} does not have"
        )

    def undeclared(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise UndeclaredSectionError(
            f"stage {reader} read config section {name!r} without declaring it; add it to the "
            f"stage's config_sections (declared: {', '.join(sections) or 'none'})"
        )

    fields = [(name, type(getattr(config, name))) for name in sections]
    view = dataclasses.make_dataclass(
        f"{type(config).__name__}For_{reader}", fields, namespace={"__getattr__": undeclared}
    )
    return view(**{name: getattr(config, name) for name in sections})
