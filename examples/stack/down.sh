#!/usr/bin/env bash
# Stop and remove the stack's containers and network; data/ stays. Works from any directory;
# extra arguments go to `down` (e.g. ./down.sh -v). Project name: $COMPOSE_PROJECT_NAME, else "stack".
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/compose.sh" down "$@"
