# deskmate: the service image. Point DATABASE_URL at a PostgreSQL with pgvector (see compose.yaml).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY storage ./storage
COPY scheduler ./scheduler
COPY deskmate ./deskmate
RUN pip install . \
    && useradd --create-home --uid 10001 deskmate \
    && mkdir -p /data && chown deskmate /data

USER deskmate
ENV DESKMATE_DATA_DIR=/data
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=2)" || exit 1
CMD ["deskmate", "serve", "--host", "0.0.0.0", "--port", "3000"]
