# One image for every process of the system: the API (default command), Celery workers, beat,
# flower and the one-shot migration. docker-compose.yml picks the command per service.
FROM python:3.11-slim

# PYTHONPATH=/app: uvicorn and alembic put the working directory on sys.path, but celery only does
# so while it loads the app, so without it a worker could import some modules from /app and others
# from the installed copy in site-packages. With it every process uses /app, where settings.py's
# PROJECT_ROOT finds alembic.ini and var/.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

RUN groupadd --system --gid 10001 wacrm \
    && useradd --system --uid 10001 --gid wacrm --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin wacrm

WORKDIR /app

# Dependencies in their own layer, rebuilt only when pyproject.toml changes.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
       > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The source stays in /app, owned by root and read-only to the app user: alembic.ini and
# models/migrations are read from here by `alembic upgrade head`. Writable by the app user: var/
# (settings.VAR_DIR) and the Prometheus multiprocess folder; an empty named volume mounted there
# is initialised from the image's folder, ownership included.
COPY . .
RUN pip install . \
    && rm -rf build ./*.egg-info \
    && mkdir -p /app/var /var/run/wacrm-metrics \
    && chown wacrm:wacrm /app/var /var/run/wacrm-metrics

USER wacrm:wacrm

EXPOSE 8000 5555
CMD ["uvicorn", "producers.app:app", "--host", "0.0.0.0", "--port", "8000"]
