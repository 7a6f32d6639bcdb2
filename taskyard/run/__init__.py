"""The run stage: a task, once routing created it, taken in a slot, run in its workspace by its
agent, its result judged and applied, its ending written and told."""
