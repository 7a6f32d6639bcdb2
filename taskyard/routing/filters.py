"""`when:` filters: one condition on the payload each.

The value is read at a dotted `path` (`[]` flattens a list into a list of values) or by a
JMESPath expression, then one operator decides:
  equals    value == expected (a list is compared as a whole)
  in        value is one of the options; for a list value, any item is
  contains  a list holds the element, or a string the substring (strings case-insensitively)
  regex     `re.search` on the value as text; for a list value, on any item
  exists    true: the value is present (not null, not an empty list); false: it is absent
`not: true` inverts the result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jmespath.exceptions import JMESPathError

from taskyard.config.routes import FilterConfig
from taskyard.util.paths import dig

_SHOWN = 80


def failed_filter(flt: FilterConfig, payload: Any) -> str | None:
    """None when the filter holds; otherwise the reason it does not."""
    try:
        value = _read(flt, payload)
    except JMESPathError as exc:  # e.g. a function applied to a value of the wrong type
        return f"filter {flt.target} could not be evaluated: {exc}"
    if _OPERATORS[flt.operator](flt, value) != flt.negate:
        return None
    return flt.reason or _describe(flt, value)


def _read(flt: FilterConfig, payload: Any) -> Any:
    if flt.expression is not None:
        return flt.expression.search(payload)
    return dig(payload, flt.path or "")


def _equals(flt: FilterConfig, value: Any) -> bool:
    return bool(value == flt.equals)


def _one_of(flt: FilterConfig, value: Any) -> bool:
    options = flt.one_of or ()
    items = value if isinstance(value, list) else [value]
    return any(_hashless_in(item, options) for item in items)


def _hashless_in(item: Any, options: tuple[Any, ...]) -> bool:
    return any(item == option for option in options)


def _fold(item: Any) -> Any:
    return item.casefold() if isinstance(item, str) else item


def _contains(flt: FilterConfig, value: Any) -> bool:
    wanted = _fold(flt.contains)
    if isinstance(value, list):
        return any(_fold(item) == wanted for item in value)
    if isinstance(value, str) and isinstance(wanted, str):
        return wanted in value.casefold()
    return False


def _as_text(item: Any) -> str | None:
    if isinstance(item, str):
        return item
    if isinstance(item, int | float) and not isinstance(item, bool):
        return str(item)
    return None


def _regex(flt: FilterConfig, value: Any) -> bool:
    pattern = flt.pattern
    if pattern is None:
        return False
    items = value if isinstance(value, list) else [value]
    found = (_as_text(item) for item in items)
    return any(text is not None and pattern.search(text) for text in found)


def _exists(flt: FilterConfig, value: Any) -> bool:
    present = value is not None and value != []
    return present == bool(flt.exists)


_OPERATORS: dict[str, Callable[[FilterConfig, Any], bool]] = {
    "equals": _equals,
    "in": _one_of,
    "contains": _contains,
    "regex": _regex,
    "exists": _exists,
}
_EXPECTED: dict[str, Callable[[FilterConfig], Any]] = {
    "equals": lambda f: f.equals,
    "in": lambda f: list(f.one_of or ()),
    "contains": lambda f: f.contains,
    "regex": lambda f: f.regex,
    "exists": lambda f: f.exists,
}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _describe(flt: FilterConfig, value: Any) -> str:
    negated = "not " if flt.negate else ""
    expected = _shown(_EXPECTED[flt.operator](flt))
    return f"filter {flt.target} {negated}{flt.operator} {expected} failed (value: {_shown(value)})"
