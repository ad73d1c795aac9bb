# Paperbot's container image: `docker compose up -d` (compose.yaml), or see README.md "Deployment".
# The exact versions come from requirements.lock (`make lock` refreshes it).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PAPERBOT_DATABASE__URL=sqlite:////data/library.db

WORKDIR /app
COPY requirements.lock ./
RUN pip install --requirement requirements.lock

COPY pyproject.toml README.md LICENSE settings.py ./
COPY bot ./bot
COPY storage ./storage
COPY digests ./digests
COPY examples ./examples
RUN pip install --no-deps . \
 && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home --shell /usr/sbin/nologin paperbot \
 && mkdir /data && chown paperbot:paperbot /data

# The library (and its heartbeat file) lives on a volume; the bot runs as an unprivileged user.
# A cluster process (compose.yaml, profile `cluster`) sets PAPERBOT_DATABASE__URL to PostgreSQL
# instead and keeps only its heartbeat on /data.
VOLUME ["/data"]
USER paperbot

# Healthy only while the bot is connected to Discord and its scheduler runs (`paperbot health`
# reads the heartbeat the bot writes beside the library every 30 s).
HEALTHCHECK --interval=60s --timeout=15s --start-period=120s --retries=3 CMD ["paperbot", "health"]
STOPSIGNAL SIGTERM
CMD ["paperbot", "run"]
