# The official LiteLLM image, pinned to the version the tests run against
# (requirements.txt pins the same litellm; a test checks they agree).
# For a non-root base, build with --build-arg LITELLM_IMAGE=ghcr.io/berriai/litellm-non_root
ARG LITELLM_IMAGE=ghcr.io/berriai/litellm
ARG LITELLM_VERSION=1.108.7
FROM ${LITELLM_IMAGE}:main-v${LITELLM_VERSION}

WORKDIR /app

# Our few extra dependencies; litellm itself is already in the base image at the pinned version.
COPY requirements.txt /app/requirements.txt
RUN pip install --no-cache-dir -r /app/requirements.txt

COPY app/ /app/app/
COPY custom_callbacks.py config.yaml entrypoint.sh /app/

ENV PYTHONPATH=/app \
    CONFIG_FILE_PATH=/app/config.yaml \
    USAGE_SPOOL_PATH=/app/data/usage-spool.db \
    PORT=4000 \
    PYTHONUNBUFFERED=1

# The outbox lives here: mount a volume on /app/data to keep undelivered events across redeploys.
RUN mkdir -p /app/data && chmod 0775 /app/data && chmod 0755 /app/entrypoint.sh
VOLUME ["/app/data"]

EXPOSE 4000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/health/liveliness' % os.environ.get('PORT', '4000'), timeout=4)"]

# The default base runs as root because LiteLLM's Prisma engines live in root's
# home; the non_root base (see above) runs as its own user.
ENTRYPOINT ["/app/entrypoint.sh"]
