"""`python -m app [options]`: serve the lab (the same options as `rlhf-lab serve`)."""

from app.cli import main

raise SystemExit(main())
