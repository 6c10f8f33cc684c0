"""``python -m faults``: see ``faults/__init__.py`` and ``faults/suite.py``."""

from faults.suite import main

if __name__ == "__main__":
    raise SystemExit(main())
