#!/usr/bin/env bash
# Set up (if needed) and run the test suite; extra arguments go to pytest (e.g. -m "not slow").
# Ray runs inside a loopback-only network namespace when possible (scripts/loopback.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec scripts/loopback.sh .venv/bin/python -m pytest "$@"
