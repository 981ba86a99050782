"""`python -m gigaam_api` runs the `gigaam-api` command."""

from gigaam_api.cli import main

raise SystemExit(main())
