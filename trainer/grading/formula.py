"""The `calculate_output` formula of a multi grader: a tiny safe arithmetic language.

Grammar (precedence low to high; `^` is right-associative and binds tighter than a
leading minus, so `-2^2` is -4 as in maths):

    expr   := term (("+" | "-") term)*
    term   := unary (("*" | "/") unary)*
    unary  := ("-" | "+") unary | power
    power  := atom (("^" | "**") unary)?
    atom   := NUMBER | NAME | NAME "(" expr ("," expr)* ")" | "(" expr ")"

Names are sub-grader names; functions are OpenAI's list: min max abs floor ceil exp sqrt
log. The parser builds a tree of closures once, so evaluating it per sample costs a few
function calls and never touches `eval`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from .limits import MAX_FORMULA_CHARS
from .result import FORMULA_PARSE_ERROR, OTHER_ERROR, GraderValidationError, GradingError

Node = Callable[[Mapping[str, float]], float]
MAX_FORMULA_DEPTH = 50  # parentheses, calls and exponents inside each other

FUNCTIONS: dict[str, tuple[Callable[..., float], int, int]] = {
    # name: (implementation, min args, max args)
    "min": (min, 1, 64),
    "max": (max, 1, 64),
    "abs": (abs, 1, 1),
    "floor": (lambda x: float(math.floor(x)), 1, 1),
    "ceil": (lambda x: float(math.ceil(x)), 1, 1),
    "exp": (math.exp, 1, 1),
    "sqrt": (math.sqrt, 1, 1),
    "log": (math.log, 1, 2),
}

_SPACE = re.compile(r"\s*")
_TOKEN = re.compile(
    r"(?:(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>\*\*|[-+*/^(),]))"
)


class FormulaError(GraderValidationError):
    """A formula that does not parse; `position` is the 0-based character offset."""

    def __init__(self, message: str, position: int, param: str | None = None):
        self.reason = message
        self.position = position
        super().__init__(
            f"{message} (at character {position + 1})", param, flag=FORMULA_PARSE_ERROR
        )


@dataclass(frozen=True, slots=True)
class Formula:
    """A parsed formula: call `evaluate(values)` with one number per name."""

    source: str
    names: frozenset[str]
    _root: Node

    def evaluate(self, values: Mapping[str, float]) -> float:
        try:
            result = float(self._root(values))
        except ZeroDivisionError:
            raise GradingError(
                OTHER_ERROR, f"calculate_output {self.source!r}: division by zero"
            ) from None
        except (ValueError, OverflowError) as exc:
            raise GradingError(OTHER_ERROR, f"calculate_output {self.source!r}: {exc}") from None
        if not math.isfinite(result):
            raise GradingError(OTHER_ERROR, f"calculate_output {self.source!r}: result is {result}")
        return result


class _Parser:
    def __init__(self, source: str):
        self.source = source
        self.tokens = self._tokenize(source)
        self.index = 0
        self.depth = 0
        self.names: set[str] = set()

    @staticmethod
    def _tokenize(source: str) -> list[tuple[str, str, int]]:
        """One pass; every step consumes input, so the cost is linear in the formula's size."""
        tokens: list[tuple[str, str, int]] = []
        position = _SPACE.match(source, 0).end()
        while position < len(source):
            match = _TOKEN.match(source, position)
            if not match:
                raise FormulaError(f"unexpected character {source[position]!r}", position)
            kind = match.lastgroup or ""
            tokens.append((kind, match.group(kind), match.start(kind)))
            position = _SPACE.match(source, match.end()).end()
        tokens.append(("end", "", len(source)))
        return tokens

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.index]

    def take(self) -> tuple[str, str, int]:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, text: str) -> None:
        kind, value, position = self.take()
        if value != text:
            found = "the end" if kind == "end" else repr(value)
            raise FormulaError(f"expected {text!r} but found {found}", position)

    def parse(self) -> Node:
        if self.peek()[0] == "end":
            raise FormulaError("the formula is empty", 0)
        node = self.expr()
        kind, value, position = self.peek()
        if kind != "end":
            raise FormulaError(f"unexpected {value!r}", position)
        return node

    # A chain like `a + b + ... + z` becomes one node that loops over its terms, not a
    # nest of one closure per operator: a long formula must not recurse as deep as it is long.
    def expr(self) -> Node:
        first = self.term()
        rest: list[tuple[bool, Node]] = []
        while self.peek()[1] in ("+", "-"):
            rest.append((self.take()[1] == "-", self.term()))
        if not rest:
            return first
        if len(rest) == 1:
            right = rest[0][1]
            if rest[0][0]:
                return lambda v, a=first, b=right: a(v) - b(v)
            return lambda v, a=first, b=right: a(v) + b(v)
        return lambda v, a=first, r=tuple(rest): _chain_sum(a(v), r, v)

    def term(self) -> Node:
        first = self.unary()
        rest: list[tuple[bool, Node]] = []
        while self.peek()[1] in ("*", "/"):
            rest.append((self.take()[1] == "/", self.unary()))
        if not rest:
            return first
        if len(rest) == 1:
            right = rest[0][1]
            if rest[0][0]:
                return lambda v, a=first, b=right: a(v) / b(v)
            return lambda v, a=first, b=right: a(v) * b(v)
        return lambda v, a=first, r=tuple(rest): _chain_product(a(v), r, v)

    def unary(self) -> Node:
        signs = 0
        while self.peek()[1] in ("-", "+"):  # a loop, so `- - - ... x` does not recurse
            signs += self.take()[1] == "-"
        if signs:
            self._enter()
            inner = self.power()
            self.depth -= 1
            return (lambda v, a=inner: -a(v)) if signs % 2 else inner
        return self.power()

    def _enter(self) -> None:
        """Count nesting (parentheses, calls, exponents); refuse what would recurse too deep."""
        self.depth += 1
        if self.depth > MAX_FORMULA_DEPTH:
            raise FormulaError(
                f"the formula nests more than {MAX_FORMULA_DEPTH} levels deep", self.peek()[2]
            )

    def power(self) -> Node:
        base = self.atom()
        if self.peek()[1] in ("^", "**"):
            self.take()
            self._enter()
            exponent = self.unary()
            self.depth -= 1
            return lambda v, a=base, b=exponent: _pow(a(v), b(v))
        return base

    def atom(self) -> Node:
        kind, value, position = self.take()
        if kind == "number":
            constant = float(value)
            return lambda v, c=constant: c
        if kind == "name":
            if self.peek()[1] == "(":
                return self.call(value, position)
            if value in FUNCTIONS:
                raise FormulaError(f"{value} is a function; write {value}(...)", position)
            self.names.add(value)
            return lambda v, n=value: v[n]
        if value == "(":
            self._enter()
            node = self.expr()
            self.expect(")")
            self.depth -= 1
            return node
        found = "the end of the formula" if kind == "end" else repr(value)
        raise FormulaError(f"expected a number, a grader name or '(' but found {found}", position)

    def call(self, name: str, position: int) -> Node:
        if name not in FUNCTIONS:
            known = ", ".join(FUNCTIONS)
            raise FormulaError(f"unknown function {name!r}; allowed: {known}", position)
        function, least, most = FUNCTIONS[name]
        self.expect("(")
        self._enter()
        args = [self.expr()]
        while self.peek()[1] == ",":
            self.take()
            args.append(self.expr())
        self.expect(")")
        self.depth -= 1
        if not least <= len(args) <= most:
            raise FormulaError(
                f"{name}() takes {least if least == most else f'{least} to {most}'} argument(s), got {len(args)}",
                position,
            )
        if len(args) == 1:
            # min(x) and max(x) of one number are that number (the builtins want an iterable).
            return args[0] if function in (min, max) else (lambda v, f=function, a=args[0]: f(a(v)))
        return lambda v, f=function, a=tuple(args): f(*(x(v) for x in a))


def _chain_sum(total: float, rest: tuple[tuple[bool, Node], ...], v: Mapping[str, float]) -> float:
    for negative, node in rest:
        total = total - node(v) if negative else total + node(v)
    return total


def _chain_product(
    total: float, rest: tuple[tuple[bool, Node], ...], v: Mapping[str, float]
) -> float:
    for divide, node in rest:
        total = total / node(v) if divide else total * node(v)
    return total


def _pow(base: float, exponent: float) -> float:
    result = base**exponent
    if isinstance(result, complex):
        raise ValueError(f"{base} ^ {exponent} is not a real number")
    return result


def parse_formula(
    source: str, names: Iterable[str] | None = None, param: str | None = None
) -> Formula:
    """Parse `source`; with `names`, also reject names that are not sub-graders."""
    if not isinstance(source, str):
        raise GraderValidationError("must be a string formula", param, flag=FORMULA_PARSE_ERROR)
    if len(source) > MAX_FORMULA_CHARS:
        raise GraderValidationError(
            f"is {len(source):,} characters long; the limit for a formula is {MAX_FORMULA_CHARS:,}",
            param,
            flag=FORMULA_PARSE_ERROR,
        )
    try:
        parser = _Parser(source)
        root = parser.parse()
    except FormulaError as exc:
        raise FormulaError(exc.reason, exc.position, param) from None
    except RecursionError:
        raise GraderValidationError(
            "formula is nested too deeply", param, flag=FORMULA_PARSE_ERROR
        ) from None
    if names is not None:
        allowed = set(names)
        unknown = sorted(parser.names - allowed)
        if unknown:
            raise GraderValidationError(
                f"unknown grader name {unknown[0]!r} in formula; graders: {', '.join(sorted(allowed)) or 'none'}",
                param,
                flag=FORMULA_PARSE_ERROR,
            )
    return Formula(source, frozenset(parser.names), root)


def weighted_mean_formula(weights: Mapping[str, float], gates: Iterable[str] = ()) -> str:
    """The formula the rubric builder uses: a weighted mean, times 0 unless every gate scored 1.

    `floor(g)` is 1 only when gate `g` gave full marks, so any failed gate zeroes the total.
    """
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("weights must add up to more than 0")
    terms = " + ".join(f"{_number(w)} * {name}" for name, w in weights.items() if w)
    formula = f"({terms}) / {_number(total)}"
    gate_terms = [f"floor({g})" for g in gates]
    return " * ".join([formula, *gate_terms]) if gate_terms else formula


def _number(value: float) -> str:
    return repr(int(value)) if float(value).is_integer() else repr(float(value))
