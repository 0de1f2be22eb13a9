from secateur.cli.main import main

raise SystemExit(main())
