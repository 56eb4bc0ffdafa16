"""The one config mechanism (docs/method.md §8.2).

Every config is a dataclass that inherits `Config`: defaults and help text live in the
field (`field(default=..., metadata={"help": ...})`, as peft does), `__post_init__`
validates with the checks below, and `from_dict` builds it from a YAML/JSON mapping with
`build`: each value is typed by its field's annotation (YAML 1.1 reads `4e-5` as text),
nested sections become their dataclasses, and an unknown key is a `ConfigError` naming the
dotted key (and the file, when there is one). `mama config show` lists any of them.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mama_core.errors import ConfigError

C = TypeVar("C")


class Config:
    """Base of every config dataclass: `from_dict` / `to_dict` / `from_yaml`."""

    @classmethod
    def from_dict(cls: type[C], data: Any, path: str | Path | None = None) -> C:
        return build(cls, data, path=path)

    @classmethod
    def from_yaml(cls: type[C], path: str | Path) -> C:
        return build(cls, read_yaml(Path(path)), path=path)

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON data (tuples as lists) that `from_dict` reads back to an equal config."""
        return plain(dataclasses.asdict(self))


def plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


# --------------------------------------------------------------------------- building


def build(cls: type[C], data: Any, prefix: str = "", path: str | Path | None = None) -> C:
    """A `cls` dataclass from a mapping: unknown keys and bad values become ConfigErrors
    naming the dotted field (`prefix` + key) and `path`."""
    try:
        return _build(cls, data, prefix)
    except ConfigError as exc:
        if path is not None and exc.path is None:
            raise ConfigError(exc.reason, path=path, field=exc.field) from None
        raise


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"must be a mapping, got {type(data).__name__}", field=prefix or None)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown option (known: {', '.join(sorted(names))})", field=_join(prefix, unknown[0]))
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(v, hints[k], _join(prefix, k)) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise prefixed(exc, prefix) from None


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def prefixed(exc: ConfigError, prefix: str) -> ConfigError:
    """The error with its field named from the enclosing section (`optim.lr`). A config
    that already names its own section (VisionConfig says `vision.path`) keeps that name
    under the section's parent (`model.vision.path`)."""
    field_name = exc.field or ""
    if not prefix or field_name == prefix or field_name.startswith(prefix + "."):
        return exc
    parent, _, section = prefix.rpartition(".")
    if field_name.startswith(section + "."):
        return ConfigError(exc.reason, path=exc.path, field=_join(parent, field_name))
    return ConfigError(exc.reason, path=exc.path, field=_join(prefix, field_name) if field_name else prefix)


def _as_float(value: Any, name: str) -> float:
    # PyYAML (YAML 1.1) reads `4e-5` as a string: accept any text float() understands.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"must be a number, got {value!r}", field=name)
    return float(value)


def _coerce(value: Any, hint: Any, name: str) -> Any:
    """Check/convert a YAML value against a field's type hint."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], name)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, name) if isinstance(value, dict) else value
    if hint in _SCALARS:
        return _SCALARS[hint](value, name)
    if origin is tuple:
        return _tuple(value, args, name)
    if origin is dict:
        _require(isinstance(value, dict), "a mapping", value, name)
    if origin is list:
        _require(isinstance(value, (list, tuple)), "a list", value, name)
    return value


def _bool(value: Any, name: str) -> bool:
    _require(isinstance(value, bool), "true or false", value, name)
    return value


def _int(value: Any, name: str) -> int:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    _require(_number(value, integer=True), "an integer", value, name)
    return value


def _str(value: Any, name: str) -> str:
    _require(isinstance(value, str), "a string", value, name)
    return value


_SCALARS = {bool: _bool, int: _int, float: _as_float, str: _str}


def _tuple(value: Any, args: tuple, name: str) -> tuple:
    if len(args) == 2 and args[1] is Ellipsis:  # tuple[str, ...]
        args = (args[0],) * (len(value) if isinstance(value, (list, tuple)) else 0)
    if not isinstance(value, (list, tuple)) or len(value) != len(args):
        raise ConfigError(f"must be a list of {len(args)} values, got {value!r}", field=name)
    return tuple(_coerce(v, a, f"{name}[{i}]") for i, (v, a) in enumerate(zip(value, args)))


# --------------------------------------------------------------------------- files


def read_yaml(path: Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file ({} when empty); errors name the file."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", path=path) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", path=path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping", path=path)
    return data


# --------------------------------------------------------------------------- checks for __post_init__


def _number(value: Any, integer: bool = False) -> bool:
    if isinstance(value, bool):
        return False
    if integer:
        return isinstance(value, int)
    return isinstance(value, (int, float)) and math.isfinite(value)


def _require(ok: bool, what: str, value: Any, name: str) -> None:
    if not ok:
        raise ConfigError(f"must be {what}, got {value!r}", field=name)


def positive_int(value: Any, name: str) -> None:
    _require(_number(value, integer=True) and value > 0, "a positive integer", value, name)


def non_negative_int(value: Any, name: str) -> None:
    _require(_number(value, integer=True) and value >= 0, "a non-negative integer", value, name)


def positive_number(value: Any, name: str) -> None:
    _require(_number(value) and value > 0, "a positive number", value, name)


def non_negative_number(value: Any, name: str) -> None:
    _require(_number(value) and value >= 0, "a non-negative number", value, name)


def probability(value: Any, name: str) -> None:
    _require(_number(value) and 0.0 <= value <= 1.0, "a probability in [0, 1]", value, name)


def in_interval(value: Any, name: str, low: float, high: float, closed_low: bool = True,
                closed_high: bool = False) -> None:
    """`value` in [low, high) by default; the brackets follow `closed_low` / `closed_high`."""
    ok = _number(value) and (low <= value if closed_low else low < value) and (
        value <= high if closed_high else value < high)
    brackets = ("[" if closed_low else "(") + f"{low}, {high}" + ("]" if closed_high else ")")
    _require(ok, f"in {brackets}", value, name)


def choice(value: Any, allowed: tuple | list, name: str) -> None:
    _require(value in allowed, f"one of {tuple(allowed)}", value, name)


def ordered_pair(value: tuple, name: str, low: float, high: float) -> None:
    """(min, max) with low <= min <= max <= high."""
    _require(len(value) == 2 and low <= value[0] <= value[1] <= high,
             f"(min, max) with {low} <= min <= max <= {high}", value, name)


def device_name(value: Any, name: str) -> None:
    """auto | cpu | cuda | cuda:N (None, where a field allows it, is checked by the caller)."""
    ok = isinstance(value, str) and (value in ("auto", "cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit()))
    _require(ok, "auto, cpu, cuda or cuda:N", value, name)
