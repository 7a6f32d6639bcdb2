"""`taskyard policy check FILE --input JSON`: which rules of a policy file fire on an input,
and the decision they make (`taskyard.policy`).

Exit codes, so a script or CI step can act on the decision:

    0  allow     no rule fired, or only allow rules
    1  deny      a deny rule fired (or a rule could not be evaluated)
    3  approve   an approval is needed (at the risk printed)
    2  bad input the policy file is refused (file, line, rule id) or the input is not JSON
                 of the documented shape

Without `--point` every point is evaluated and the strongest outcome decides the exit code.
The CEL engine is imported inside the command, so other commands do not pay for it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from taskyard.cli.main import JsonOpt, _print_json

if TYPE_CHECKING:
    from taskyard.policy.engine import Decision

policy_app = typer.Typer(no_args_is_help=True, help="Policy as code: check a policies.yaml.")
EXIT = {"allow": 0, "deny": 1, "approve": 3}
BAD_INPUT = 2


def _refuse(message: str) -> typer.Exit:
    sys.stderr.write(f"error: {message}\n")
    return typer.Exit(BAD_INPUT)


def _read_input(text: str) -> Any:
    """Inline JSON (`{...}`), `-` for stdin, or a JSON file's path."""
    if text.lstrip().startswith("{"):
        raw = text
    elif text == "-":
        raw = sys.stdin.read()
    else:
        try:
            raw = Path(text).read_text(encoding="utf-8")
        except OSError as exc:
            raise _refuse(f"cannot read input {text}: {exc.strerror}") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _refuse(f"input is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _refuse("input must be a JSON object")
    return data


def _print_text(point: str, decision: Decision) -> None:
    risk = f" (risk {decision.risk})" if decision.risk else ""
    sys.stdout.write(f"{point}: {decision.outcome.value}{risk}\n")
    if not decision.fired:
        sys.stdout.write("  no rule fired\n")
    for fired in decision.fired:
        sys.stdout.write(f"  {fired.rule_id} [{fired.outcome.value}]: {fired.reason}\n")


@policy_app.command("check")
def policy_check(
    file: Annotated[Path, typer.Argument(help="The policies.yaml to load.")],
    input_: Annotated[
        str, typer.Option("--input", help="The input: JSON text, a JSON file, or - for stdin.")
    ],
    point: Annotated[
        str | None,
        typer.Option(help="scheduling, pre_merge or pre_deploy (default: every point)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Load FILE, evaluate it on the input, print the outcome and every rule that fired.
    Exit 0 allow, 1 deny, 3 approval needed, 2 bad file or input."""
    from taskyard.policy.engine import InputError, evaluate
    from taskyard.policy.rules import Point, PolicyError, load_policy

    try:
        points = [Point(point)] if point else list(Point)
    except ValueError:
        raise _refuse(f"unknown point {point!r} (one of {', '.join(Point)})") from None
    data = _read_input(input_)
    try:
        policy = load_policy(file)
        decisions = {p.value: evaluate(policy, p, data) for p in points}
    except OSError as exc:
        raise _refuse(f"cannot read {file}: {exc.strerror}") from None
    except (PolicyError, InputError) as exc:
        raise _refuse(str(exc)) from None
    if as_json:
        _print_json({name: d.as_json() for name, d in decisions.items()})
    else:
        for name, decision in decisions.items():
            _print_text(name, decision)
    strongest = max((d.outcome for d in decisions.values()), key=lambda o: o.strength)
    raise typer.Exit(EXIT[strongest.value])
