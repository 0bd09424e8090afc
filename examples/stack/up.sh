#!/usr/bin/env bash
# Build the stand-in images if needed (cached by content), then start the stack with them
# (compose.sh adds compose.standins.yml), wait until every service is healthy, and seed Qdrant
# (seed_qdrant.py). Works from any directory; extra arguments go to `up`
# (e.g. ./up.sh worker). Project name: $COMPOSE_PROJECT_NAME, else "stack".
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if [[ -x "$repo/.venv/bin/python" ]]; then py="$repo/.venv/bin/python"; else py="python3"; fi
"$py" "$here/images/build.py"
"$here/compose.sh" up -d --wait "$@"
# upstream Qdrant starts empty: one collection for backups and drills to count (through the API;
# left alone when it is there)
python3 "$here/seed_qdrant.py" "$here"
