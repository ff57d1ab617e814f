from edgeline.cli import main

raise SystemExit(main())
