"""getm-tui: a terminal download manager for data URLs."""

__version__ = "0.1.0"
