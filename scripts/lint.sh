#!/usr/bin/env bash
# Lint as CI does: ruff's checks and its formatter (the version pinned in pyproject's test extra).
#   scripts/lint.sh          check only (exit 1 on a finding or a file the formatter would change)
#   scripts/lint.sh --fix    apply the safe fixes and format in place
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [[ "${1:-}" == "--fix" ]]; then
  .venv/bin/ruff check --fix .
  exec .venv/bin/ruff format .
fi
.venv/bin/ruff check .
exec .venv/bin/ruff format --check .
