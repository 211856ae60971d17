"""lme4 formula syntax -> fixed terms and grouping terms.

Supported: ``y ~ 1 + x + factor(z) + a:b + a*b + offset(o) + (1|g) + (1|a:b) + (1|a/b)``,
``offset(log(e))`` for an exposure, and ``- 1`` or ``0`` to drop the intercept.
Random slopes as lme4 writes them: ``(1 + x|g)`` and ``(x|g)`` (correlated with the
intercept), ``(0 + x|g)`` (a slope alone), ``(x || g)`` (uncorrelated: ``(1|g) + (0 + x|g)``),
with x a numeric column or ``factor(z)`` (one effect per contrast, or per level without
an intercept). Structured random intercepts: ``rw1(age)``, ``rw2(age)``, ``ar1(age)`` over
ordered levels and ``icar(state)``, ``bym2(state)`` over areas (:mod:`misterp.model.terms`).

Example
-------
>>> f = parse_formula("y ~ x + (1|g) + (1|a:b)")
>>> [t.name for t in f.groups]
['g', 'a:b']
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import MisterpInputError

_NAME = r"[A-Za-z_.][A-Za-z0-9_.]*"
_NAME_RE = re.compile(rf"^{_NAME}$")
STRUCTURED_KINDS = ("rw1", "rw2", "ar1", "icar", "bym2")
_STRUCTURED_RE = re.compile(rf"({'|'.join(STRUCTURED_KINDS)})\(\s*({_NAME})\s*\)")


@dataclass(frozen=True)
class FixedTerm:
    """A product of columns (one column for a main effect).

    ``as_factor`` marks columns wrapped in ``factor()``: treated as categorical
    even when numeric.
    """

    columns: tuple[str, ...]
    as_factor: tuple[bool, ...]

    @property
    def name(self) -> str:
        return ":".join(f"factor({c})" if f else c for c, f in zip(self.columns, self.as_factor))


@dataclass(frozen=True)
class GroupTerm:
    """A random-effects term ``(effects | g1:g2:...)`` with one covariance block.

    ``effects`` lists "(Intercept)" and the slope columns; ``as_factor``
    marks slope columns wrapped in ``factor()``.
    """

    columns: tuple[str, ...]
    effects: tuple[str, ...] = ("(Intercept)",)
    as_factor: tuple[bool, ...] = (False,)
    kind: str = "iid"  # or a structured prior over the levels: "rw1", "rw2", "ar1", "icar", "bym2"

    @property
    def name(self) -> str:
        joined = ":".join(self.columns)
        return joined if self.kind == "iid" else f"{self.kind}({joined})"

    @property
    def structured(self) -> bool:
        return self.kind != "iid"

    @property
    def intercept(self) -> bool:
        return "(Intercept)" in self.effects

    @property
    def slopes(self) -> list[tuple[str, bool]]:
        """(column, as_factor) of each slope effect."""
        return [(e, f) for e, f in zip(self.effects, self.as_factor) if e != "(Intercept)"]


@dataclass(frozen=True)
class Formula:
    """A parsed model formula."""

    text: str
    response: str
    intercept: bool
    fixed: tuple[FixedTerm, ...]
    groups: tuple[GroupTerm, ...]
    offset: str | None = None
    trials: str | None = None
    failures: str | None = None
    offset_log: bool = False  # offset(log(col)): the offset is the log of the column

    @property
    def outcome_columns(self) -> list[str]:
        """The response and, for ``cbind(s, n - s)`` or ``cbind(s, f)``, its count column."""
        return [c for c in (self.response, self.trials, self.failures) if c]

    @property
    def columns(self) -> list[str]:
        """Every data column the formula uses, outcome first, without repeats."""
        cols = list(self.outcome_columns)
        for t in self.fixed:
            cols += t.columns
        for g in self.groups:
            cols += list(g.columns) + [c for c, _ in g.slopes]
        if self.offset:
            cols.append(self.offset)
        return list(dict.fromkeys(cols))

    @property
    def predictors(self) -> list[str]:
        """The columns a frame must carry to be predicted (all but the outcome's)."""
        return [c for c in self.columns if c not in self.outcome_columns]


def _fail(text: str, why: str) -> MisterpInputError:
    return MisterpInputError(
        f"Cannot parse the formula {text!r}: {why}. Write it in lme4 syntax, for example "
        "'y ~ x + (1|g) + (1|a:b)'."
    )


def _split_top(s: str, seps: str) -> list[tuple[str, str]]:
    """Split ``s`` at top-level characters in ``seps``; returns (sign, piece) pairs."""
    out, depth, start, sign = [], 0, 0, "+"
    for i, ch in enumerate(s):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError("a ')' has no matching '('")
        elif ch in seps and depth == 0:
            out.append((sign, s[start:i].strip()))
            sign, start = ch, i + 1
    if depth != 0:
        raise ValueError("a '(' is never closed")
    out.append((sign, s[start:].strip()))
    return out


def _check_name(text: str, name: str) -> str:
    if not _NAME_RE.match(name):
        raise _fail(text, f"{name!r} is not a column name")
    return name


def _group_terms(text: str, inner: str) -> list[GroupTerm]:
    uncorrelated = "||" in inner
    if inner.replace("||", "|").count("|") != 1:
        raise _fail(text, f"'({inner})' must have exactly one '|' (or '||')")
    lhs, rhs = (p.strip() for p in inner.replace("||", "|").split("|"))
    if not rhs:
        raise _fail(text, f"'({inner})' has no grouping factor")
    intercept, slopes = _effects(text, inner, lhs)
    if uncorrelated:  # (x || g) is (1|g) + (0 + x|g): one block per effect
        blocks = ([[("(Intercept)", False)]] if intercept else []) + [[s] for s in slopes]
    else:
        blocks = [([("(Intercept)", False)] if intercept else []) + slopes]
    if "/" in rhs:  # (1|a/b) means (1|a) + (1|a:b)
        parts = [_check_name(text, p.strip()) for p in rhs.split("/")]
        groupings = [tuple(parts[: k + 1]) for k in range(len(parts))]
    else:
        groupings = [tuple(_check_name(text, p.strip()) for p in rhs.split(":"))]
    return [GroupTerm(g, tuple(e for e, _ in block), tuple(f for _, f in block))
            for g in groupings for block in blocks]


def _effects(text: str, inner: str, lhs: str) -> tuple[bool, list[tuple[str, bool]]]:
    """The intercept flag and the (column, as_factor) slopes of a random term's left side."""
    try:
        pieces = _split_top(lhs, "+-")
    except ValueError as e:
        raise _fail(text, str(e)) from None
    intercept, slopes = True, []
    for position, (sign, piece) in enumerate(pieces):
        if not piece:
            if position == 0 and len(pieces) > 1 and pieces[1][0] == "-":
                continue
            raise _fail(text, f"'({inner})' has a '+' or '-' with nothing after it")
        if piece in ("0", "1"):
            intercept = piece == "1" and sign == "+"
            continue
        if sign == "-":
            raise _fail(text, f"removing {piece!r} with '-' inside '({inner})' is not supported")
        if ":" in piece or "*" in piece:
            raise MisterpInputError(
                f"The random term '({inner})' in {text!r} has an interaction slope ({piece!r}), which misterp does "
                "not support. Give the slope a column of its own.")
        slopes.append(_fixed_factor(text, piece))
    if not intercept and not slopes:
        raise _fail(text, f"'({inner})' has no effect left of the '|'")
    return intercept, list(dict.fromkeys(slopes))


def _fixed_factor(text: str, piece: str) -> tuple[str, bool]:
    m = re.fullmatch(rf"factor\(\s*({_NAME})\s*\)", piece)
    if m:
        return m.group(1), True
    if "(" in piece:
        raise _fail(text, f"the term {piece!r} is not supported (use a column, factor(col), offset(col) or offset(log(col)))")
    return _check_name(text, piece), False


def parse_formula(text: str) -> Formula:
    """Parse an lme4-style formula string into a :class:`Formula`.

    Examples
    --------
    >>> f = parse_formula("y ~ male + (1 + male | state) + offset(log(e))")
    >>> f.response, [g.effects for g in f.groups], f.offset, f.offset_log
    ('y', [('(Intercept)', 'male')], 'e', True)
    >>> [g.name for g in parse_formula("y ~ rw1(age) + (1|state)").groups]
    ['rw1(age)', 'state']
    """
    if not isinstance(text, str) or text.count("~") != 1:
        raise _fail(str(text), "it needs exactly one '~' between the outcome and the predictors")
    lhs, rhs = (p.strip() for p in text.split("~"))
    if not lhs:
        raise _fail(text, "there is no outcome column before '~'")
    response, trials, failures = _response(text, lhs)
    if not rhs:
        raise _fail(text, "there are no predictors after '~' (use '~ 1' for an intercept only)")
    try:
        pieces = _split_top(rhs, "+-")
    except ValueError as e:
        raise _fail(text, str(e)) from None
    intercept, fixed, groups, offset, offset_log = True, [], [], None, False
    for position, (sign, piece) in enumerate(pieces):
        if not piece:
            if position == 0 and len(pieces) > 1 and pieces[1][0] == "-":
                continue  # the empty piece before a leading '-', as in '~ -1 + x'
            raise _fail(text, "a '+' or '-' has nothing after it")
        if piece in ("0", "1"):
            intercept = piece == "1" and sign == "+"
            continue
        if sign == "-":
            raise _fail(text, f"removing the term {piece!r} with '-' is not supported")
        if piece.startswith("(") and piece.endswith(")"):
            groups += _group_terms(text, piece[1:-1].strip())
            continue
        structured = _STRUCTURED_RE.fullmatch(piece)
        if structured:
            groups.append(GroupTerm((structured.group(2),), kind=structured.group(1)))
            continue
        m = re.fullmatch(rf"offset\(\s*(log\(\s*)?({_NAME})\s*(\)\s*)?\)", piece)
        if m and bool(m.group(1)) == bool(m.group(3)):
            if offset is not None:
                raise _fail(text, "only one offset() term is allowed")
            offset, offset_log = m.group(2), bool(m.group(1))
            continue
        if "*" in piece:  # a*b means a + b + a:b
            factors = [_fixed_factor(text, p.strip()) for p in piece.split("*")]
            for k in range(1, 1 << len(factors)):
                chosen = [f for j, f in enumerate(factors) if k >> j & 1]
                fixed.append(FixedTerm(tuple(c for c, _ in chosen), tuple(f for _, f in chosen)))
            continue
        factors = [_fixed_factor(text, p.strip()) for p in piece.split(":")]
        fixed.append(FixedTerm(tuple(c for c, _ in factors), tuple(f for _, f in factors)))
    # a*b expansion can repeat terms; keep the first, and order by interaction size as R does
    fixed = sorted(dict.fromkeys(fixed), key=lambda t: len(t.columns))
    return Formula(text, response, intercept, tuple(fixed), tuple(dict.fromkeys(groups)), offset, trials, failures,
                   offset_log)


def _response(text: str, lhs: str) -> tuple[str, str | None, str | None]:
    """(successes, trials, failures) from ``y``, ``cbind(s, n - s)`` or ``cbind(s, f)``."""
    m = re.fullmatch(rf"cbind\(\s*({_NAME})\s*,\s*(.+?)\s*\)", lhs)
    if not m:
        return _check_name(text, lhs), None, None
    successes, second = m.group(1), m.group(2)
    total = re.fullmatch(rf"({_NAME})\s*-\s*({_NAME})", second)
    if total:
        if total.group(2) != successes:
            raise _fail(text, f"in cbind(s, n - s) the subtracted column must be {successes!r}")
        return successes, _check_name(text, total.group(1)), None
    return successes, None, _check_name(text, second)
