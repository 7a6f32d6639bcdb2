"""Prompt templates: jinja2, shipped in the package, overridable from a directory.

A route names its template (`prompt: pr-review` → `pr-review.md.j2`). A file of the same name
in `runs.prompts_dir` wins over the shipped one. Templates see: task_id, route, event (id,
type, source, subject, actor, priority), payload, context (fetcher name → data), paths
(workspace, repo, context_dir, output_dir) and result_schema (JSON text).

Platform text is fenced, by default (see `taskyard.util.untrusted`). Every rendered prompt starts
with `_preamble.md.j2`, which tells the model that text between `<untrusted-TAG …>` and
`</untrusted-TAG>` (TAG random per render) is data, not instructions. Every `{{ … }}` of a
template is fenced unless it is one of taskyard's own values (task_id, route, the paths,
result_schema, and event.id / source / priority / received_at), a number, or the output of
`untrusted(value, "label")` (which fences with a label; its label and `missing` text must be
literal, and `{% filter %}` blocks, which would rewrite the fences, are refused when the
template is loaded). So a template, shipped or an operator's, cannot put platform text into
the prompt unfenced.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2
import orjson

from taskyard.exceptions import ConfigError
from taskyard.util.untrusted import Fence, new_tag

PREAMBLE = "_preamble"
_FENCE_VAR = "_taskyard_fence"  # the render's Fence, in the template context
_OWN = ("task_id", "route", "workspace", "repo", "context_dir", "output_dir", "result_schema")
_OWN_EVENT = ("id", "source", "priority", "received_at")


class Own(str):
    """Text of taskyard's own, emitted as is (anything else a template emits is fenced)."""

    __slots__ = ()


def _own(value: Any) -> Any:
    return Own(value) if isinstance(value, str) else value


@jinja2.pass_context
def _finalize(context: jinja2.runtime.Context, value: Any) -> Any:
    """What every `{{ … }}` emits: taskyard's own text and numbers as they are, None as
    nothing, anything else fenced."""
    if isinstance(value, Own) or value is None or value == "":
        return "" if value is None else value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    fence: Fence = context[_FENCE_VAR]
    return fence.wrap(value)


@jinja2.pass_context
def _untrusted(
    context: jinja2.runtime.Context, value: Any, label: str, missing: str = "(none)"
) -> Own:
    """`value` fenced with a label; `missing` (not fenced) when it is None or empty."""
    if value is None or value == "" or isinstance(value, jinja2.Undefined):
        return Own(missing)
    fence: Fence = context[_FENCE_VAR]
    return Own(fence.wrap(value, label))


def _marked(variables: Mapping[str, Any], fence: Fence) -> dict[str, Any]:
    marked = dict(variables)
    for name in _OWN:
        if name in marked:
            marked[name] = _own(marked[name])
    event = marked.get("event")
    if isinstance(event, Mapping):
        marked["event"] = {k: _own(v) if k in _OWN_EVENT else v for k, v in event.items()}
    marked[_FENCE_VAR] = fence
    marked["untrusted_tag"] = Own(fence.tag)
    return marked


class _VettingLoader(jinja2.BaseLoader):
    """Loads through `inner`, and refuses (as a syntax error) what `_vet` refuses: every
    template, included ones too, is vetted when it is loaded."""

    def __init__(self, inner: jinja2.BaseLoader) -> None:
        self.inner = inner

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        source, filename, uptodate = self.inner.get_source(environment, template)
        _vet(environment.parse(source, template, filename), template, filename)
        return source, filename, uptodate

    def list_templates(self) -> list[str]:
        return self.inner.list_templates()


def _vet(tree: jinja2.nodes.Template, name: str, filename: str | None) -> None:
    """Refuse what would let platform text out of its fence: an `untrusted(…)` whose label or
    `missing` is not literal text (both are emitted outside the fence), and `{% filter %}`
    blocks (they rewrite fenced text, tags included: `upper` makes a tag no one names)."""
    for block in tree.find_all(jinja2.nodes.FilterBlock):
        why = "{% filter %} blocks would rewrite the fences of their text"
        raise jinja2.TemplateSyntaxError(why, block.lineno, name, filename)
    for call in tree.find_all(jinja2.nodes.Call):
        if not (isinstance(call.node, jinja2.nodes.Name) and call.node.name == "untrusted"):
            continue
        extra = [*call.args[1:], *(k.value for k in call.kwargs if k.key != "value")]
        if (
            call.dyn_args
            or call.dyn_kwargs
            or any(not isinstance(arg, jinja2.nodes.Const) for arg in extra)
        ):
            why = (
                "untrusted(value, label, missing): the label and missing text must be literal "
                "text (they are shown outside the fence)"
            )
            raise jinja2.TemplateSyntaxError(why, call.lineno, name, filename)


def _tojson(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


class PromptLibrary:
    def __init__(self, override_dir: Path | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if override_dir is not None:
            loaders.append(jinja2.FileSystemLoader(str(override_dir)))
        loaders.append(jinja2.PackageLoader("taskyard", "templates/prompts"))
        self.env = jinja2.Environment(
            loader=_VettingLoader(jinja2.ChoiceLoader(loaders)),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            finalize=_finalize,
        )
        self.env.filters["tojson"] = _tojson
        self.env.globals["untrusted"] = _untrusted

    def names(self) -> list[str]:
        names = (n.removesuffix(".md.j2") for n in self.env.list_templates(["j2"]))
        return sorted(n for n in names if not n.startswith("_"))

    def check(self, name: str) -> None:
        """Raise ConfigError unless the template (and the preamble) exists and parses."""
        self._template(PREAMBLE)
        self._template(name)

    def _template(self, name: str) -> jinja2.Template:
        try:
            return self.env.get_template(f"{name}.md.j2")
        except jinja2.TemplateNotFound:
            raise ConfigError(
                f"no prompt template {name!r}; known: {', '.join(self.names())}"
            ) from None
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(f"prompt template {name!r}: line {exc.lineno}: {exc}") from exc

    def render(self, name: str, variables: Mapping[str, Any], tag: str | None = None) -> str:
        """The preamble, then the template, with platform text fenced in `tag` (a new random
        one by default; see `taskyard.util.untrusted.new_tag`)."""
        marked = _marked(variables, Fence(tag or new_tag()))
        try:
            preamble = self._template(PREAMBLE).render(**marked)
            return preamble + self._template(name).render(**marked)
        except jinja2.UndefinedError as exc:
            raise ConfigError(f"prompt template {name!r}: {exc}") from exc
        except jinja2.TemplateSyntaxError as exc:  # an included template's, vetted when used
            where = f"{exc.name or name!r}: line {exc.lineno}"
            raise ConfigError(f"prompt template {name!r} includes {where}: {exc.message}") from exc
