"""One typed (de)serialiser for every saved config: frozen dataclasses <-> JSON values, driven by the type hints.

`to_json_value(obj)` writes a dataclass as a JSON-ready dict (enums as their values, tuples as lists).
`from_json_value(cls, data, where)` reads it back and checks every value against `cls`'s type hints:
scalars (`int`, `float`, `bool`, `str`; a bool is not an int, an int is not a bool, an int is a float),
`X | None`, `tuple[X, ...]`, fixed tuples such as `tuple[int, int, int]`, `list[X]`, `dict[str, X]`, `Any`,
`Literal[...]`, `enum.Enum` subclasses and nested dataclasses. Unknown keys are refused, missing keys take the
field's default. Every error is one ValueError line that names the dotted path and what is allowed:

    card.sampler.steps: expected int, got str '25'
    samplers[0].spacing: 'even' is not one of ['ddim', 'sections'] or null

`split_format` reads a document's format version: a file without one was written before versions were
recorded (version 1); a newer version than the reader knows is refused, naming it.
"""
from __future__ import annotations

import dataclasses
import enum
import functools
import numbers
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")
_NONE = type(None)


# ---------------------------------------------------------------------------------------------- writing

def to_json_value(obj: Any) -> Any:
    """A dataclass (or any value inside one) as plain JSON values: dicts, lists, str, int, float, bool, None."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json_value(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return to_json_value(obj.value)
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    if isinstance(obj, (list, tuple)):
        return [to_json_value(v) for v in obj]
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if isinstance(k, bool) or not isinstance(k, (str, int)):
                raise TypeError(f"cannot write a {type(k).__name__} key {k!r} as JSON (object keys are strings)")
            out[str(k)] = to_json_value(v)
        return out
    raise TypeError(f"cannot write a {type(obj).__name__} as JSON: {obj!r}")


# ---------------------------------------------------------------------------------------------- reading

def from_json_value(cls: type[T], data: Any, where: str = "card") -> T:
    """Dataclass `cls` from JSON values, type-checked; `where` names the root in error messages ("" = none)."""
    return _read(cls, data, where)


def split_format(data: Any, *, current: int, key: str = "format", where: str = "card") -> tuple[int, dict[str, Any]]:
    """(format version, the other keys) of a saved document; without `key` it is version 1 (written before
    versions were recorded). A version newer than `current` is refused with a message naming it."""
    if not isinstance(data, dict):
        raise ValueError(f"{where or 'top level'}: expected an object, got {_got(data)}")
    rest = dict(data)
    version = rest.pop(key, 1)
    at = _field(where, key)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{at}: expected int (a format version), got {_got(version)}")
    if version < 1:
        raise ValueError(f"{at}: expected a format version >= 1, got {version}")
    if version > current:
        raise ValueError(f"{at}: version {version} is newer than this code reads (up to {current}); "
                         f"update scdm to read it")
    return version, rest


def _field(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _got(value: Any) -> str:
    """`str '25'`, `float 2.5`, `null`: what a message says it found (long values shortened)."""
    if value is None:
        return "null"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    kind = {dict: "object", list: "list"}.get(type(value), type(value).__name__)
    return f"{kind} {text}"


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _describe(tp: Any) -> str:
    """What a type allows, in words: `int`, `a list of int`, `one of ['ddim', 'sections']`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return "any JSON value"
    if _is_union(tp):
        return " or ".join("null" if a is _NONE else _describe(a) for a in args)
    if origin is typing.Literal:
        return f"one of {list(args)}"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return f"one of {[e.value for e in tp]}"
    if dataclasses.is_dataclass(tp):
        return f"an object ({tp.__name__.lstrip('_')})"
    if (origin is tuple and len(args) == 2 and args[1] is Ellipsis) or origin is list:
        return f"a list of {_describe(args[0])}"
    if origin is tuple:
        return f"a list of {len(args)} ({', '.join(_describe(a) for a in args)})"
    if origin is dict or tp is dict:
        return "an object"
    return getattr(tp, "__name__", str(tp))


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _read(tp: Any, value: Any, path: str, nullable: bool = False) -> Any:
    """`value` as type `tp`; `nullable`: the field is `tp | None` (messages then say null is allowed too)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    at = path or "top level"
    null = " or null" if nullable else ""

    def wrong(what: str) -> ValueError:
        return ValueError(f"{at}: expected {what}{null}, got {_got(value)}")

    if tp is Any:
        return value
    if _is_union(tp):
        if value is None and _NONE in args:
            return None
        options = [a for a in args if a is not _NONE]
        if len(options) == 1:
            return _read(options[0], value, path, nullable=_NONE in args)
        for option in options:
            try:
                return _read(option, value, path)
            except ValueError:
                pass
        raise wrong(_describe(tp))
    if origin is typing.Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise ValueError(f"{at}: {value!r} is not one of {list(args)}{null}")
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                return tp(value)
        except ValueError:
            pass
        raise ValueError(f"{at}: {value!r} is not one of {[e.value for e in tp]}{null}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise wrong(_describe(tp))
        return _read_dataclass(tp, value, path)
    if tp is bool:
        if not isinstance(value, bool):
            raise wrong("bool (true or false)")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("int")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong("float")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise wrong("str")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise wrong(_describe(tp))
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ValueError(f"{at}: expected {_describe(tp)}{null}, got {len(value)} items {_got(list(value))}")
            items = [_read(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value))]
        else:
            items = [_read(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise wrong("an object")
        key_tp, value_tp = args or (str, Any)
        out = {}
        for k, v in value.items():
            _read(key_tp, k, f"{_field(path, str(k))} (key)")
            out[k] = _read(value_tp, v, _field(path, str(k)))
        return out
    raise TypeError(f"{at}: scdm.serialize cannot read type {tp!r}")  # a programming error, not a user's


def _read_dataclass(cls: type, value: Any, path: str) -> Any:
    at = path or "top level"
    if not isinstance(value, dict):
        raise ValueError(f"{at}: expected {_describe(cls)}, got {_got(value)}")
    fields = [f for f in dataclasses.fields(cls) if f.init]
    names = [f.name for f in fields]
    unknown = sorted(set(value) - set(names), key=str)
    if unknown:
        raise ValueError(f"{at}: unknown fields {unknown}; known fields are {names}")
    hints = _hints(cls)
    kwargs = {}
    for f in fields:
        child = _field(path, f.name)
        if f.name in value:
            kwargs[f.name] = _read(hints[f.name], value[f.name], child)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{child}: missing; expected {_describe(hints[f.name])}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:  # the class's own checks (__post_init__)
        raise ValueError(f"{at}: {e}") from None
