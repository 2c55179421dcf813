from getm_tui.cli import entry

entry()
