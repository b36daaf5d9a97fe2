#!/usr/bin/env bash
# Set up (if needed) and run the tests.
#   scripts/test.sh          the fast tier: unit tests without the slow ones (a few minutes on 2 cores)
#   scripts/test.sh --all    everything: slow tests, and the integration tests (Ray, the CLI, a 2-node cluster)
# Other arguments go to pytest (e.g. scripts/test.sh -k filter, scripts/test.sh --all -x tests/integration).
# Ray runs inside a loopback-only network namespace when possible (scripts/loopback.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
tier=(-m "not slow and not integration")
args=()
for arg in "$@"; do
  if [[ "$arg" == "--all" ]]; then tier=(); else args+=("$arg"); fi
done
exec scripts/loopback.sh .venv/bin/python -m pytest ${tier[@]+"${tier[@]}"} ${args[@]+"${args[@]}"}
