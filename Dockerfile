# deskmate: the service image. Point DATABASE_URL at a PostgreSQL with pgvector (see compose.yaml,
# deploy/k8s/ and docs/production.md). Without DATABASE_URL it runs the embedded PostgreSQL in /data.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 deskmate \
    && mkdir -p /data && chown deskmate /data
WORKDIR /app

# The dependencies alone, pinned: this layer is rebuilt only when requirements.lock changes,
# not on every change of deskmate's code.
COPY requirements.lock ./
RUN pip install -r requirements.lock

# deskmate itself; its dependencies are all installed above already.
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY storage ./storage
COPY scheduler ./scheduler
COPY deskmate ./deskmate
RUN pip install --no-deps . && pip check

USER deskmate
ENV DESKMATE_DATA_DIR=/data
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=2)"]
# On 0.0.0.0 the web chat is open only with WEBCHAT_TOKEN (handlers/webchat, access_mode).
CMD ["deskmate", "serve", "--host", "0.0.0.0", "--port", "3000"]
