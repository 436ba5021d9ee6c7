from opencleanrooms.cli import main

raise SystemExit(main())
