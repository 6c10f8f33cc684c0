"""Command line: ``python -m cli up|demo|migrate`` (the ``./run`` script calls it)."""
