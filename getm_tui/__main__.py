from getm_tui.cli import main

raise SystemExit(main())
