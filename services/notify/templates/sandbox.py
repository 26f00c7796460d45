"""The Jinja2 environment message templates run in, and what they may contain.

Templates are written by administrators and previewed by any hotline staff, so they run sandboxed
(no private attributes, no unsafe callables) and are plain text (email is text/plain: no autoescape).
A message needs text, facts and conditions only. Without loops, calls, macros and `set`, and with the
text-growing operators bounded, a template renders in time and memory bounded by its own length, so
neither a preview nor a send can stall the service. A reference to anything outside the context fails
(StrictUndefined), and validation checks every name against the kind's context, in every branch.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Undefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

MAX_SOURCE_CHARS = 20_000  # far above any real message
MAX_TEXT = 10_000  # the longest text `*` may build
MAX_OUTPUT_CHARS = 100_000  # a rendered message; an email body is a few thousand
MAX_NUMBER_BITS = 256  # numbers have no use in a message beyond small counts

ALLOWED_NODES = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.Const, nodes.Name, nodes.Filter, nodes.Test,
    nodes.If, nodes.CondExpr, nodes.Compare, nodes.Operand, nodes.And, nodes.Or, nodes.Not, nodes.Neg, nodes.Pos,
    nodes.Concat, nodes.Add, nodes.Sub, nodes.Mul, nodes.Div, nodes.FloorDiv, nodes.Mod, nodes.Pow,
    nodes.Getattr, nodes.Getitem, nodes.Slice, nodes.Tuple, nodes.List, nodes.Keyword,
)
_REFUSED_NAMES = {
    nodes.For: "{% for %} loops", nodes.Macro: "macros", nodes.CallBlock: "{% call %} blocks",
    nodes.Call: "calls (use a filter instead, e.g. |upper)", nodes.Assign: "{% set %}",
    nodes.AssignBlock: "{% set %}", nodes.Include: "{% include %}", nodes.Import: "{% import %}",
    nodes.FromImport: "{% import %}", nodes.Extends: "{% extends %}", nodes.Block: "{% block %}",
    nodes.With: "{% with %}", nodes.FilterBlock: "{% filter %} blocks", nodes.Dict: "dict literals",
    nodes.ScopedEvalContextModifier: "{% autoescape %}",
}
# Filters that never make text longer than what they are given (upper may: ß → SS, at most threefold).
SAFE_FILTERS = ("capitalize", "count", "d", "default", "first", "last", "length", "lower", "string", "title",
                "trim", "truncate", "upper", "wordcount")


class Refused(Exception):
    """A template that may not be used: `message`, at `line` of its source when known."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line


class MessageEnvironment(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, trim_blocks=True, cache_size=0)
        self.globals.clear()  # no range, lipsum, cycler, namespace: a context holds all a message needs
        self.filters = {name: self.filters[name] for name in SAFE_FILTERS}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "%" and isinstance(left, str):
            raise SecurityError("formatting text with % is not allowed; join text with ~")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int) and len(seq) * times > MAX_TEXT:
                    raise SecurityError(f"text repeated beyond {MAX_TEXT} characters")
        if _is_number(left) and _is_number(right):
            if operator == "**" and (abs(right) > 64 or abs(left) > 2 ** 32):
                raise SecurityError("the power is too large")
            if _bits(left) + _bits(right) > MAX_NUMBER_BITS:
                raise SecurityError("the number is too large")
        return super().call_binop(context, operator, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        return _no_method(super().getattr(obj, attribute), attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        return _no_method(super().getitem(obj, argument), argument)


def _no_method(value: Any, name: Any) -> Any:
    # Calls are refused, so a method could only be printed, as its address: an author's mistake.
    if callable(value) and not isinstance(value, Undefined):
        raise SecurityError(f"{name!r} is a method, and templates cannot call; use a filter, e.g. |upper")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bits(value: int | float) -> int:
    return int(abs(value)).bit_length() if abs(value) != float("inf") else MAX_NUMBER_BITS + 1


ENVIRONMENT = MessageEnvironment()


@dataclass(frozen=True)
class Compiled:
    template: Any  # jinja2.Template
    names: dict[str, int]  # each context name used -> the first line using it


def _check(tree: nodes.Template) -> dict[str, int]:
    names: dict[str, int] = {}
    for node in tree.find_all(nodes.Node):
        if not isinstance(node, ALLOWED_NODES):
            what = _REFUSED_NAMES.get(type(node), type(node).__name__)
            raise Refused(f"{what} cannot be used in a message template", node.lineno)
        if isinstance(node, nodes.Name):
            names.setdefault(node.name, node.lineno)
    return names


@lru_cache(maxsize=512)
def compile_source(source: str) -> Compiled:
    """A template's source compiled, once it passes the rules above; raises Refused."""
    if len(source) > MAX_SOURCE_CHARS:
        raise Refused(f"a template is at most {MAX_SOURCE_CHARS} characters")
    try:
        tree = ENVIRONMENT.parse(source)
        names = _check(tree)
        return Compiled(ENVIRONMENT.from_string(tree), names)
    except Refused:
        raise
    except Exception as exc:  # noqa: BLE001 - syntax errors, unknown filters, a parser's RecursionError
        raise Refused(_message(exc), getattr(exc, "lineno", None) or line_of(exc)) from None


def line_of(exc: BaseException) -> int | None:
    """The template line an error was raised at: Jinja rewrites tracebacks to show template lines."""
    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == "<template>"]
    return lines[-1] if lines else None


def _message(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return text if not isinstance(exc, RecursionError) else "the template nests too deeply"


def render_source(source: str, context: dict[str, str]) -> str:
    """`source` rendered with `context`; raises Refused with the line at fault."""
    compiled = compile_source(source)
    try:
        text = compiled.template.render(context)
    except Exception as exc:  # noqa: BLE001 - undefined names, sandbox refusals, 1/0 and the like
        raise Refused(_message(exc), line_of(exc)) from None
    if len(text) > MAX_OUTPUT_CHARS:
        raise Refused(f"the message renders longer than {MAX_OUTPUT_CHARS} characters")
    return text
