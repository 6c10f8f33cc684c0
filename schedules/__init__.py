"""What Celery beat runs: the inbox sweeper now; delivery and adaptive follow-ups later."""
