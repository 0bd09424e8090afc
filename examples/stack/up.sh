#!/usr/bin/env bash
# Build the stand-in images if needed (cached by content), then start the stack and wait until
# every service is healthy. Works from any directory; extra arguments go to `up`
# (e.g. ./up.sh worker). Project name: $COMPOSE_PROJECT_NAME, else "stack".
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if [[ -x "$repo/.venv/bin/python" ]]; then py="$repo/.venv/bin/python"; else py="python3"; fi
"$py" "$here/images/build.py"
exec "$here/compose.sh" up -d --wait "$@"
