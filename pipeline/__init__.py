"""What an event does to the records, inside the caller's transaction.

Every function here takes the caller's ``Session`` and neither commits nor defines a Celery
task: the task modules in ``workers/``, the API and beat call these steps and own the
transaction. Work to be done after the commit is published through ``queueing``. Locks are taken
in the one order of ``pipeline.locks``.
"""
