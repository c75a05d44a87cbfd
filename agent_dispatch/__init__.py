"""agent-dispatch: settings, wiring, CLI and demo."""

__version__ = "0.1.0"
