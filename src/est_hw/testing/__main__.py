"""``python -m est_hw.testing``: the same as ``python -m est_hw.testing.server``."""

from est_hw.testing.cli import main

raise SystemExit(main())
