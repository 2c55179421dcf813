"""The command line: the entry point, `get`, the queue verbs and `run`."""
