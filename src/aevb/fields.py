"""Type checks of the fields of aevb's frozen config dataclasses (from JSON or Python callers),
so that a wrong type is one clear AevbError rather than a failure deep in training."""
from __future__ import annotations

from dataclasses import fields

from .errors import AevbError

_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
          "None": (type(None),), "tuple[int, ...]": (tuple, list)}


def check_types(config, prefix: str = "") -> None:
    """Each field of the dataclass `config` whose annotation is a simple type (see _TYPES)
    must hold a value of that type; `prefix` names the section in the message."""
    for f in fields(config):
        parts = [part.strip() for part in str(f.type).split("|")]
        if not all(part in _TYPES for part in parts):
            continue  # a nested section checks itself
        value = getattr(config, f.name)
        allowed = tuple(t for part in parts for t in _TYPES[part])
        ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
        if ok and isinstance(value, (tuple, list)):
            ok = all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        if not ok:
            raise AevbError(f"{prefix}{f.name.replace('_', '-')} must be of type {f.type}, "
                            f"got {value!r}")
