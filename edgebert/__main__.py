from edgebert.cli import main

raise SystemExit(main())
