"""Build frozen config dataclasses from plain YAML data, reporting every
problem at once with its key path (and a "did you mean" for typos)."""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

T = TypeVar("T")

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
        if type(value) is not int:
            errors.append(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if type(value) not in (int, float):
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


def _located(message: str, path: str, names: list[str]) -> str:
    """Turn "pub_hwm must be > 0" raised by a section into "bus.pub_hwm: must be > 0"."""
    head, _, rest = message.partition(" ")
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
        data = yaml.safe_load(text)
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
        value = yaml.safe_load(raw) if raw.strip() else ""
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
