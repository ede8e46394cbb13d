# One image for the API and the worker.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core core
COPY api api
COPY bots bots
COPY cli.py worker.py alembic.ini ./
COPY migrations migrations
RUN python -m venv /opt/duebot && /opt/duebot/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/duebot/bin:$PATH PYTHONUNBUFFERED=1 DUEBOT_VAR_DIR=/var/lib/duebot
RUN useradd --system --uid 10001 --home-dir /app duebot \
 && mkdir -p /app /var/lib/duebot && chown duebot /var/lib/duebot
COPY --from=build /opt/duebot /opt/duebot
WORKDIR /app
COPY --chown=root:root alembic.ini cli.py worker.py ./
COPY --chown=root:root migrations migrations
COPY --chown=root:root templates templates
USER duebot
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
CMD ["duebot", "serve", "--host", "0.0.0.0", "--port", "8000"]
