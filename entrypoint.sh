#!/usr/bin/env bash
# Container entrypoint: LiteLLM's own database migrations when there is a
# database, then the proxy (python -m app) as this process, so that SIGTERM
# from Docker or Railway reaches the server directly.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CONFIG_FILE_PATH="${CONFIG_FILE_PATH:-$here/config.yaml}"
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"

if [[ -n "${DATABASE_URL:-}" ]]; then
  echo '{"event": "running_database_migrations", "logger": "entrypoint", "level": "info"}'
  # LiteLLM's CLI runs its Prisma migrations and exits without serving.
  litellm --config "$CONFIG_FILE_PATH" --skip_server_startup
fi

exec python -m app "$@"
