# JackpotX production image: gunicorn + gevent WebSocket worker, non-root.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 ENV=production
WORKDIR /srv/jackpotx
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmagic1 curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /srv/jackpotx jackpotx
COPY pyproject.toml README.md ./
COPY app ./app
# The message catalogues are compiled in the build (the .mo files are not in git).
RUN pip install Babel==2.19.0 && pybabel compile --statistics -d app/translations \
    && pip install .
COPY wsgi.py worker.py gunicorn.conf.py ./
COPY migrations ./migrations
RUN mkdir -p instance checkpoints && chown -R jackpotx instance checkpoints
USER jackpotx
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:5000/health || exit 1
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
