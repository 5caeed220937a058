"""The C library's interface as ctypes, read from its one declaration in kernels.h.

kernels.h declares the structs the step takes (`aevb_layer`, `aevb_step_args`), the enum of
likelihoods and the prototype of every exported function, between its "interface" comment and
"(end of the interface)". This module parses that block, so the structs, the signatures and
the likelihood codes are written once, in C. It knows the types that block uses: pointers
(any `*`, a function-pointer typedef, or a pointer to one of the structs), int64_t, int32_t,
int, float and double.
"""
from __future__ import annotations

import ctypes
import re
from pathlib import Path

HEADER = Path(__file__).with_name("kernels.h")
SCALARS = {"int64_t": ctypes.c_int64, "int32_t": ctypes.c_int32, "int": ctypes.c_int,
           "float": ctypes.c_float, "double": ctypes.c_double, "void": None}


def _block(text: str) -> str:
    """The interface block of the header, comments removed."""
    start = text.index("The library's interface, declared once")
    end = text.index("(end of the interface)")
    return re.sub(r"/\*.*?\*/", " ", text[text.index("*/", start) + 2:end], flags=re.S)


def _ctype(declaration: str, structs: dict, pointer_typedefs: set):
    """The ctypes type of one declared thing: 'const float *x' -> c_void_p."""
    words = declaration.replace("const ", " ").replace("*", " * ").split()
    base, pointer = words[0], "*" in words
    if pointer and base in structs:
        return ctypes.POINTER(structs[base])
    if pointer or base in pointer_typedefs:
        return ctypes.c_void_p
    if base not in SCALARS:
        raise ValueError(f"kernels.h: a type interface.py does not know: {declaration!r}")
    return SCALARS[base]


def _fields(body: str, structs: dict, pointer_typedefs: set) -> list:
    """[(name, ctypes type)] of a struct body: 'float *a, *b; int64_t n;'."""
    out = []
    for declaration in filter(None, (d.strip() for d in body.split(";"))):
        first, *rest = [part.strip() for part in declaration.split(",")]
        base = first.split()[0] if not first.startswith("const") else " ".join(first.split()[:2])
        for name_part in [first[len(base):].strip(), *rest]:
            name = name_part.lstrip("*").strip()
            out.append((name, _ctype(f"{base} {'*' if name_part.startswith('*') else ''}",
                                     structs, pointer_typedefs)))
    return out


def parse(text: str) -> tuple[dict, dict, dict]:
    """(structs {C name: ctypes.Structure}, signatures {function: (argtypes, restype)},
    enum constants {name: value}) of a header's interface block."""
    block = _block(text)
    pointer_typedefs = set(re.findall(r"typedef\s+\w+\s*\(\s*\*\s*(\w+)\s*\)", block))
    structs: dict = {}
    for body, name in re.findall(r"typedef\s+struct\s*\{(.*?)\}\s*(\w+)\s*;", block, re.S):
        structs[name] = type(name, (ctypes.Structure,),
                             {"_fields_": _fields(body, structs, pointer_typedefs)})
    constants = {}
    for body in re.findall(r"enum\s*\{(.*?)\}\s*;", block, re.S):
        for item in filter(None, (i.strip() for i in body.split(","))):
            name, value = (part.strip() for part in item.split("="))
            constants[name] = int(value)
    signatures = {}
    for restype, name, params in re.findall(r"^(void|int)\s+(aevb_\w+)\s*\((.*?)\)\s*;",
                                            block, re.S | re.M):
        argtypes = [_ctype(" ".join(p.split()), structs, pointer_typedefs)
                    for p in params.split(",")]
        signatures[name] = (argtypes, SCALARS[restype])
    return structs, signatures, constants


_PARSED: tuple | None = None


def declared() -> tuple[dict, dict, dict]:
    """`parse` of kernels.h, read once per process."""
    global _PARSED
    if _PARSED is None:
        _PARSED = parse(HEADER.read_text())
    return _PARSED
