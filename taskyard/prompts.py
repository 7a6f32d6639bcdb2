"""Prompt templates: jinja2, shipped in the package, overridable from a directory.

A route names its template (`prompt: pr-review` → `pr-review.md.j2`). A file of the same name
in `runs.prompts_dir` wins over the shipped one. Templates see: task_id, route, event (id,
type, source, subject, actor, priority), payload, context (fetcher name → data), paths
(workspace, repo, context_dir, output_dir) and result_schema (JSON text).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
import orjson

from taskyard.exceptions import ConfigError


def _tojson(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


class PromptLibrary:
    def __init__(self, override_dir: Path | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if override_dir is not None:
            loaders.append(jinja2.FileSystemLoader(str(override_dir)))
        loaders.append(jinja2.PackageLoader("taskyard", "templates/prompts"))
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
        )
        self.env.filters["tojson"] = _tojson

    def names(self) -> list[str]:
        names = (n.removesuffix(".md.j2") for n in self.env.list_templates(["j2"]))
        return sorted(n for n in names if not n.startswith("_"))

    def check(self, name: str) -> None:
        """Raise ConfigError unless the template exists and parses."""
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

    def render(self, name: str, variables: Mapping[str, Any]) -> str:
        try:
            return self._template(name).render(**variables)
        except jinja2.UndefinedError as exc:
            raise ConfigError(f"prompt template {name!r}: {exc}") from exc
