"""Queue plumbing any process may import: the Celery app, every task name, publishing by name,
and publishing only after the outermost commit. Nothing here runs a task."""
