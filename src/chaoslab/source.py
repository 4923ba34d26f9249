"""Loading YAML/JSON documents so that every error can name file, line, column and field.

Experiment files, stack files and suite files all go through here:

    doc = load_document(path, variables={"HOST": "127.0.0.1"})
    model = doc.validate(Experiment)            # raises InputErrors, one line each

A ``Document`` keeps, for every field path such as ``("method", 0, "duration")``, where its
key and its value stand in the file, and turns pydantic's errors into
``file:line:col: method[0].duration: invalid duration 'x' (expected e.g. 250ms, 10s, 2m)``.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from .errors import InputError
from .registry import did_you_mean, suggest
from .units import shown

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class InputErrors(InputError):
    """Several input errors found at once; ``str()`` gives one line per error."""

    def __init__(self, errors: list[InputError]) -> None:
        self.errors = errors
        first = errors[0]
        super().__init__(
            first.message, file=first.file, line=first.line, column=first.column, field=first.field
        )

    def __str__(self) -> str:
        return "\n".join(InputError.__str__(e) for e in self.errors)


def format_loc(loc: Loc) -> str:
    """``("method", 0, "duration")`` -> ``method[0].duration``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


@dataclass
class Document:
    """Parsed data plus where each value and key stands in the file (1-based line and column)."""

    path: str
    data: Any
    value_marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def where(self, loc: Loc, *, key: bool = False) -> tuple[int | None, int | None, Loc]:
        """Line and column of the deepest known prefix of ``loc``."""
        for n in range(len(loc), -1, -1):
            prefix = tuple(loc[:n])
            marks = (self.key_marks, self.value_marks) if key else (self.value_marks, self.key_marks)
            for table in marks:
                if prefix in table:
                    line, col = table[prefix]
                    return line, col, prefix
        return None, None, ()

    def error(self, loc: Loc, message: str, *, key: bool = False) -> InputError:
        line, col, _ = self.where(loc, key=key)
        return InputError(message, file=self.path, line=line, column=col, field=format_loc(loc) or None)

    def validate(self, model: type[M], *, data: Any = None, prefix: Loc = ()) -> M:
        """Validate ``data`` (default: the whole document) found at ``prefix`` against ``model``."""
        payload = self.data if data is None else data
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            raise InputErrors(self.errors_from(exc, model, prefix)) from None

    def errors_from(self, exc: ValidationError, model: type[BaseModel], prefix: Loc = ()) -> list[InputError]:
        raw = [(_clean_loc(self.data, prefix, tuple(e["loc"])), e) for e in exc.errors(include_url=False)]
        # A typo ("titel") also makes the real field look missing; report only the typo.
        suggested = {
            (*loc[:-1], hint)
            for loc, e in raw
            if e["type"] == "extra_forbidden"
            for hint in _suggestions(str(loc[-1]), _fields_at(model, tuple(e["loc"])[:-1]))
        }
        errors: list[tuple[tuple[int, int], InputError]] = []
        seen: set[tuple[Loc, str]] = set()
        for loc, err in raw:
            if err["type"] == "missing" and loc in suggested:
                continue
            message = _message(err, model, tuple(err["loc"]))
            if (loc, message) in seen:
                continue
            seen.add((loc, message))
            e = self.error(loc, message, key=err["type"] == "extra_forbidden")
            errors.append(((e.line or 0, e.column or 0), e))
        return [e for _, e in sorted(errors, key=lambda x: x[0])]


def load_document(path: str | os.PathLike[str], variables: Mapping[str, str] | None = None, *,
                  substitute: bool = True) -> Document:
    """Read a YAML or JSON file, substituting ``${VAR}`` and ``${VAR:-default}`` in strings.

    Variables come from ``variables`` first, then the environment. An undefined variable
    without a default is an error at its line.
    """
    p = Path(path)
    name = str(path)
    try:
        with open(p, "rb") as f:
            raw = f.read(MAX_DOCUMENT_BYTES + 1)
    except FileNotFoundError:
        raise InputError("no such file", file=name) from None
    except IsADirectoryError:
        raise InputError("is a directory, expected a YAML or JSON file", file=name) from None
    except OSError as exc:
        raise InputError(exc.strerror or str(exc), file=name) from None
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise InputError(f"the file is larger than {MAX_DOCUMENT_BYTES // 1024} KiB", file=name)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _line_col(raw[: exc.start].decode("utf-8", errors="replace"))
        raise InputError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x}: {exc.reason})",
                         file=name, line=line, column=col) from None
    return parse_document(text, name, variables, substitute=substitute)


def _line_col(before: str) -> tuple[int, int]:
    """1-based line and column of the character that follows ``before``."""
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def parse_document(text: str, name: str, variables: Mapping[str, str] | None = None, *,
                   substitute: bool = True) -> Document:
    """``substitute=False`` leaves ``${...}`` as written (a Chaos Toolkit file means its own
    configuration keys by them, not environment variables)."""
    json_file = name.endswith(".json")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.reader.ReaderError as exc:  # a NUL byte or another character YAML forbids
        line, col = _line_col(text[: exc.position])
        what = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        raise InputError(f"character {what} is not allowed in YAML or JSON text", file=name,
                         line=line, column=col) from None
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, name, json_file) from None
    except yaml.YAMLError as exc:
        raise InputError(f"cannot parse: {exc}", file=name) from None
    except RecursionError:
        raise InputError(f"nesting deeper than Python can follow (keep it under {MAX_DEPTH} levels)",
                         file=name) from None
    if node is None:
        raise InputError("the file is empty", file=name, line=1, column=1)
    doc = Document(path=name, data=None)
    env = dict(os.environ)
    env.update(variables or {})
    doc.data = _Builder(doc, env, substitute).build(node, ())
    return doc


def _syntax_error(exc: yaml.MarkedYAMLError, name: str, json_file: bool) -> InputError:
    """One line at the place a person should look. For an unclosed quote or bracket PyYAML's
    problem mark is where it gave up (often the end of the file); the context mark is where the
    construct opened, so that is where we point, naming where it gave up."""
    problem = exc.problem or exc.context or "syntax error"
    mark = exc.problem_mark or exc.context_mark
    ctx = exc.context_mark
    if exc.context and ctx is not None and exc.context.startswith("while scanning") and mark is not None:
        problem = f"{exc.context} that starts here: {problem} (line {mark.line + 1})"
        mark = ctx
    for pyyaml_words, plain in _PLAIN_WORDS:
        if problem.startswith(pyyaml_words):
            problem = f"{plain} ({problem})"
            break
    if json_file:
        problem = f"invalid JSON: {problem}"
    return InputError(problem, file=name, line=mark.line + 1 if mark else None,
                      column=mark.column + 1 if mark else None)


_PLAIN_WORDS = (
    ("expected <block end>", "this line is not indented like the lines above it"),
    ("mapping values are not allowed here", "unexpected ':' (check this line's indentation, or quote the value)"),
    ("found character '\\t'", "a tab: YAML indents with spaces only"),
)

MAX_DOCUMENT_BYTES = 1024 * 1024
"""Experiment, stack and suite files are small; anything larger is refused before parsing."""
MAX_VALUES = 100_000
"""Values a document may expand to. YAML aliases can make a 1 KB file expand to 10^9 values
("billion laughs"); real files have a few hundred."""
MAX_DEPTH = 64
"""Nesting of mappings and lists."""
MAX_INTEGER = 2**53
"""Largest number (integer or not) a file may hold: larger integers lose precision as floats, a
400-digit one cannot become a float at all, and nothing the format measures comes near it."""


_constructor = yaml.constructor.SafeConstructor()
_MERGE = "tag:yaml.org,2002:merge"


class _Builder:
    """Turns the composed node tree into plain data, recording marks, with the limits above.

    Aliases are followed (they are ordinary YAML), but a node that contains itself is an error,
    and so is a document that expands past ``MAX_VALUES``."""

    def __init__(self, doc: Document, env: Mapping[str, str], substitute: bool = True) -> None:
        self.doc = doc
        self.env = env
        self.substitute = substitute
        self.count = 0
        self.open: set[int] = set()

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        doc = self.doc
        doc.value_marks[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
        self.count += 1
        if self.count > MAX_VALUES:
            raise doc.error(loc, f"the document expands to more than {MAX_VALUES:,} values "
                                 "(YAML aliases repeated inside each other?)")
        if len(loc) > MAX_DEPTH:
            raise doc.error(loc, f"nested more than {MAX_DEPTH} levels deep")
        if not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            return self.scalar(node, loc)
        if id(node) in self.open:
            raise doc.error(loc, "a YAML alias refers to the value that contains it (an endless structure)")
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
            return self.mapping(node, loc)
        finally:
            self.open.discard(id(node))

    def mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[Any, Any]:
        doc = self.doc
        explicit = sum(1 for k, _ in node.value if not (isinstance(k, yaml.ScalarNode) and k.tag == _MERGE))
        try:
            _constructor.flatten_mapping(node)  # merge keys (<<): merged pairs come first
        except yaml.MarkedYAMLError as exc:
            raise doc.error(loc, exc.problem or "invalid merge key (<<)") from None
        except RecursionError:
            raise doc.error(loc, "a merge key (<<) refers to the mapping that contains it") from None
        merged = len(node.value) - explicit
        out: dict[Any, Any] = {}
        from_merge: set[str] = set()
        for index, (key_node, value_node) in enumerate(node.value):
            if not isinstance(key_node, yaml.ScalarNode):
                raise doc.error(loc, "mapping keys must be plain strings")
            key = self.scalar(key_node, loc)
            if not isinstance(key, str | int | float | bool):
                raise doc.error(loc, "mapping keys must be plain strings")
            key = str(key) if not isinstance(key, str) else key
            child = (*loc, key)
            doc.key_marks[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in out and key not in from_merge:
                raise doc.error(child, f"duplicate key {shown(key)}", key=True)
            # YAML's merge: a key written in the mapping itself overrides a merged one
            (from_merge.add if index < merged else from_merge.discard)(key)
            out[key] = self.build(value_node, child)
        return out

    def scalar(self, node: yaml.Node, loc: Loc) -> Any:
        doc = self.doc
        here = (node.start_mark.line + 1, node.start_mark.column + 1)
        try:
            value = _constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            tag = str(node.tag).rsplit(":", 1)[-1]
            why = getattr(exc, "problem", None) or str(exc)
            raise InputError(f"invalid !!{tag} value {shown(node.value)} ({why})", file=doc.path,
                             line=here[0], column=here[1], field=format_loc(loc) or None) from None
        if isinstance(value, bool) or value is None or isinstance(value, str):
            pass
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise InputError(f"{shown(node.value)} is not a finite number (.nan and .inf are not accepted)",
                                 file=doc.path, line=here[0], column=here[1], field=format_loc(loc) or None)
            if abs(value) > MAX_INTEGER:
                raise InputError(f"the number {_short(str(node.value))} is out of range (at most 2^53)",
                                 file=doc.path, line=here[0], column=here[1], field=format_loc(loc) or None)
        elif isinstance(value, int):
            if abs(value) > MAX_INTEGER:
                raise InputError(f"the number {_short(str(node.value))} is out of range (at most 2^53)",
                                 file=doc.path, line=here[0], column=here[1], field=format_loc(loc) or None)
        elif isinstance(value, datetime.date):
            # An unquoted 2026-01-01 is a date in YAML; users mean the text (a body field, an id).
            value = str(node.value)
        else:
            tag = str(node.tag).rsplit(":", 1)[-1]
            raise InputError(f"!!{tag} values are not supported here (write a string or a number)",
                             file=doc.path, line=here[0], column=here[1], field=format_loc(loc) or None)
        if self.substitute and isinstance(value, str) and "$" in value:
            value = _substitute(value, loc, doc, self.env)
        return value


def _short(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else f"{text[: limit // 2]}...{text[-6:]} ({len(text)} digits)"


def _substitute(value: str, loc: Loc, doc: Document, env: Mapping[str, str]) -> str:
    def replace(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise doc.error(loc, f"variable ${{{name}}} is not defined (pass --var {name}=VALUE)")

    return _VAR_RE.sub(replace, value)


def _clean_loc(data: Any, prefix: Loc, loc: Loc) -> Loc:
    """Drop pydantic's union-member and validator tags from ``loc``, keeping real data keys."""
    out: list[str | int] = list(prefix)
    cursor = data
    for part in prefix:  # the errors' locations are relative to the data at ``prefix``
        try:
            cursor = cursor[part]
        except (KeyError, IndexError, TypeError):
            cursor = None
            break
    for part in loc:
        if isinstance(cursor, Mapping) and part in cursor:
            out.append(part)
            cursor = cursor[part]
        elif isinstance(cursor, Sequence) and not isinstance(cursor, str) and isinstance(part, int):
            if 0 <= part < len(cursor):
                out.append(part)
                cursor = cursor[part]
        elif isinstance(cursor, Mapping) and isinstance(part, str) and not _is_tag(part):
            # a missing required field: name it, it has no mark of its own
            out.append(part)
            cursor = None
    return tuple(out)


def _is_tag(part: str) -> bool:
    return (
        part.startswith(("function-", "json-or-python", "tagged-union", "union["))
        or "[" in part
        or part in {"str", "int", "float", "bool", "list", "dict", "none", "lax-or-strict", "is-instance"}
    )


def _message(err: Any, model: type[BaseModel], raw_loc: Loc) -> str:
    kind = err["type"]
    msg: str = err["msg"]
    if kind == "extra_forbidden":
        name = str(raw_loc[-1])
        known = sorted(_fields_at(model, raw_loc[:-1]))
        hint = did_you_mean(name, known)
        text = f"unknown field {name!r}"
        if hint:
            text += f" ({hint})"
        elif known:
            text += f" (expected one of: {', '.join(known)})"
        return text
    if kind == "missing":
        return "required field is missing"
    if kind in ("value_error", "assertion_error"):
        msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "literal_error":
        got = err.get("input")
        return f"{msg} (got {shown(got)})"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{msg[0].lower()}{msg[1:]} (got {shown(err.get('input'))})"
    return msg[0].lower() + msg[1:] if msg else kind


def _suggestions(name: str, known: set[str]) -> list[str]:
    hint = suggest(name, known)
    return [hint] if hint else []


def _fields_at(model: type[BaseModel], loc: Loc) -> set[str]:
    """Names a mapping at ``loc`` may hold, following model fields through containers."""
    candidates: list[Any] = [model]
    for part in loc:
        nxt: list[Any] = []
        for c in candidates:
            for t in _unwrap(c):
                if isinstance(t, type) and issubclass(t, BaseModel):
                    if isinstance(part, str) and part in t.model_fields:
                        nxt.append(t.model_fields[part].annotation)
                    elif isinstance(part, str):
                        nxt.extend(f.annotation for f in t.model_fields.values() if f.alias == part)
                else:
                    origin = typing.get_origin(t)
                    args = typing.get_args(t)
                    if origin in (list, tuple, Sequence) and isinstance(part, int) and args:
                        nxt.append(args[0])
                    elif origin in (dict, Mapping) and len(args) == 2:
                        nxt.append(args[1])
        candidates = nxt or candidates
    names: set[str] = set()
    for c in candidates:
        for t in _unwrap(c):
            if isinstance(t, type) and issubclass(t, BaseModel):
                names.update(f.alias or n for n, f in t.model_fields.items())
    return names


def _unwrap(t: Any) -> list[Any]:
    origin = typing.get_origin(t)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(t)[0])
    if origin in (typing.Union, types.UnionType):
        out: list[Any] = []
        for a in typing.get_args(t):
            out.extend(_unwrap(a))
        return out
    return [t]


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=str)
