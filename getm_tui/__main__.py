from getm_tui.cli.main import entry

entry()
