"""``python -m discomfy`` is the same as ``python run.py``."""

from discomfy.app import main

raise SystemExit(main())
