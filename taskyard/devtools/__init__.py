"""Tools for trying taskyard without the outside world: a scripted model server the real agent
CLIs (codex, claude) can talk to instead of a model provider."""
