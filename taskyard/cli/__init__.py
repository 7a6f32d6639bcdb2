"""`taskyard …` commands: the command line is the outermost layer (it builds the settings and
hands them to `taskyard.service`)."""

from taskyard.cli.main import main

__all__ = ["main"]
