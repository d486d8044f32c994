"""Build frozen config dataclasses from plain YAML data, reporting every
problem at once with its key path (and a "did you mean" for typos).

Numbers are read as a person writes them, in a config file and in ``--set``
alike: ``50``, ``0.5``, ``1e12``, ``1_000_000``. PyYAML follows YAML 1.1,
where ``1e12`` is a string (a float needs a dot and a signed exponent),
``010`` is octal 8 and ``1:30`` is 90; :class:`_ConfigLoader` resolves plain
scalars that look like numbers as YAML 1.2 does, with ``_`` between digits
allowed as in Python.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

T = TypeVar("T")

_D = r"[0-9](?:_?[0-9])*"  # digits, "_" only between two of them
_INT = re.compile(rf"^[-+]?{_D}$")
_FLOAT = re.compile(rf"""^(?:[-+]?(?:{_D}\.(?:{_D})?(?:[eE][-+]?{_D})?
                         |\.{_D}(?:[eE][-+]?{_D})?
                         |{_D}[eE][-+]?{_D})
                     |[-+]?\.(?:inf|Inf|INF)
                     |\.(?:nan|NaN|NAN))$""", re.VERBOSE)
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 numbers (see the module docstring)."""


_ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT_TAG, _FLOAT_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ConfigLoader.add_implicit_resolver(_INT_TAG, _INT, list("-+0123456789"))
_ConfigLoader.add_implicit_resolver(_FLOAT_TAG, _FLOAT, list("-+0123456789."))


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    return int(str(loader.construct_scalar(node)).replace("_", ""))


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    text = str(loader.construct_scalar(node)).replace("_", "").lower()
    if text.endswith(".inf"):
        return float(text.replace(".inf", "inf"))
    if text == ".nan":
        return math.nan
    return float(text)


_ConfigLoader.add_constructor(_INT_TAG, _construct_int)
_ConfigLoader.add_constructor(_FLOAT_TAG, _construct_float)


def parse_yaml(text: str) -> Any:
    """YAML as :mod:`yaml.safe_load` reads it, but with YAML 1.2 numbers."""
    return yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 - a SafeLoader subclass


_SECRET_KEY = re.compile(r"(?i)^(api_?key|apikey|secret(_?key)?|access_?key|password|passphrase|private_?key|token)$")
ENV_KEYS = "UPBIT_ACCESS_KEY, UPBIT_SECRET_KEY, BINANCE_API_KEY, BINANCE_API_SECRET"


class ConfigError(ValueError):
    """Every problem found, one per line in ``problems``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _describe(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _convert(tp: Any, value: Any, path: str, errors: list[str]) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path, errors)
    if origin is Literal:
        if value not in args:
            errors.append(f"{path}: must be one of {_describe(tp)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _convert(inner[0], value, path, errors)
    if tp is bool:
        if type(value) is not bool:
            errors.append(f"{path}: expected true/false, got {value!r}")
        return value
    if tp is int:
        # 1e6 is how a person writes a million: a whole float is that integer.
        if type(value) is float and math.isfinite(value) and value.is_integer():
            return int(value)
        if type(value) is not int:
            errors.append(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        # NaN compares false with everything: as a limit it would silently disable it.
        if type(value) not in (int, float) or math.isnan(value):
            errors.append(f"{path}: expected a number, got {value!r}")
            return value
        return float(value)
    if tp is str:
        if type(value) is not str:
            errors.append(f"{path}: expected a string, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            errors.append(f"{path}: expected a list, got {value!r}")
            return ()
        item_tp = args[0] if args else Any
        return tuple(_convert(item_tp, v, f"{path}[{i}]", errors) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a mapping, got {value!r}")
            return {}
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _convert(vt, v, f"{path}.{k}", errors) for k, v in value.items()}
    return value


_CLASS_PREFIX = re.compile(r"^[A-Z]\w*Config: ")


def _located(message: str, path: str, names: list[str]) -> str:
    """Turn "pub_hwm must be > 0" raised by a section into "bus.pub_hwm: must be > 0"
    (a leading "BaselineConfig: " that some sections add is dropped)."""
    head, _, rest = _CLASS_PREFIX.sub("", message).partition(" ")
    if head in names and rest:
        return f"{path + '.' if path else ''}{head}: {rest}"
    return f"{path or 'config'}: {message}"


def build(cls: type[T], data: Any, path: str = "", errors: list[str] | None = None) -> T:
    """Build ``cls`` from ``data``; with ``errors`` given, collect instead of raising."""
    own = errors is None
    errs: list[str] = [] if errors is None else errors
    where = path or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        errs.append(f"{where}: expected a mapping, got {type(data).__name__}")
        data = {}
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        kpath = f"{path}.{key}" if path else str(key)
        if isinstance(key, str) and _SECRET_KEY.match(key):
            errs.append(f"{kpath}: secrets do not belong in a config file; set {ENV_KEYS} in the environment")
            continue
        if key not in names:
            hint = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
            errs.append(f"{kpath}: unknown key" + (f" (did you mean '{hint[0]}'?)" if hint else ""))
            continue
        before = len(errs)
        converted = _convert(hints[key], value, kpath, errs)
        if len(errs) == before:
            kwargs[key] = converted
    if len(errs) == 0 or not own:
        try:
            obj = cls(**kwargs)
        except (TypeError, ValueError) as e:
            errs.extend(_located(m, path, names) for m in str(e).split("; "))
            obj = None  # type: ignore[assignment]
    else:
        obj = None  # type: ignore[assignment]
    if own and errs:
        raise ConfigError(errs)
    return obj  # type: ignore[return-value]


def load_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such config file"]) from None
    except OSError as e:
        raise ConfigError([f"{path}: cannot read ({e.strerror})"]) from None
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError([f"{path}:{where} not valid YAML ({getattr(e, 'problem', e)})"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping"])
    return data


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply ``a.b.c=VALUE`` (VALUE in YAML syntax) to nested ``data``."""
    key, sep, raw = assignment.partition("=")
    key = key.strip()
    if not sep or not key or any(not p for p in key.split(".")):
        raise ConfigError([f"--set {assignment!r}: expected KEY=VALUE with a dotted key"])
    try:
        value = parse_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError:
        raise ConfigError([f"--set {key}: value {raw!r} is not valid YAML"]) from None
    node = data
    parts = key.split(".")
    for p in parts[:-1]:
        nxt = node.get(p)
        if nxt is None:
            nxt = node[p] = {}
        if not isinstance(nxt, dict):
            raise ConfigError([f"--set {key}: '{p}' is not a section"])
        node = nxt
    node[parts[-1]] = value
