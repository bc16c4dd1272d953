from livedash_agent.cli import main

raise SystemExit(main())
