"""What a person can do to an idea from the CLI, the API and the web UI alike: pause it, resume
it, cancel it (through `IdeaService`, which writes each step with its event), and which of
those an idea in a given state can take, so a page offers only the buttons that work."""

from __future__ import annotations

from collections.abc import Callable

from taskyard.idea import IDEA_STEPS, Idea, IdeaStatus, IdeaStep
from taskyard.ideas.service import IdeaService
from taskyard.store.base import Store

CONTROLS: dict[str, IdeaStep] = {
    "pause": IdeaStep.PAUSE,
    "resume": IdeaStep.RESUME,
    "cancel": IdeaStep.CANCEL,
}


def controls_open(status: IdeaStatus) -> list[str]:
    """The controls an idea in `status` can take, in CONTROLS' order."""
    return [name for name, step in CONTROLS.items() if status in IDEA_STEPS[step][0]]


def take_control(store: Store, control: str, idea_id: str, who: str, why: str | None) -> Idea:
    """The idea after `control` (a key of CONTROLS), taken by `who` for `why` (a resume has
    no reason). ValueError saying why when the idea cannot take it; NotFound: no such idea."""
    service = IdeaService(store)
    steps: dict[str, Callable[[], Idea]] = {
        "pause": lambda: service.pause(idea_id, who, why),
        "resume": lambda: service.resume(idea_id, who),
        "cancel": lambda: service.cancel(idea_id, who, why),
    }
    return steps[control]()
