#!/usr/bin/env bash
# Set up (if needed) and run the tests.
#   scripts/test.sh          the fast tier: unit tests without the slow ones (a few minutes on 2 cores)
#   scripts/test.sh --all    everything: slow tests, and the integration tests (Ray, the CLI, a 2-node cluster)
# Other arguments go to pytest (e.g. scripts/test.sh -k filter, scripts/test.sh --all -x tests/integration).
# Tests run in 2 processes (pytest-xdist; a file's tests stay together, so its fixtures run once;
# tests/conftest.py: SAME_PROCESS, run first in its process):
# most of the suite waits on Ray and child processes, not on the CPU. SYNTH_TEST_WORKERS=0: one process.
# Ray runs inside a loopback-only network namespace when possible (scripts/loopback.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
tier=(-m "not slow and not integration")
args=()
for arg in "$@"; do
  if [[ "$arg" == "--all" ]]; then tier=(); else args+=("$arg"); fi
done
workers="${SYNTH_TEST_WORKERS:-2}"
parallel=()
if [[ "$workers" != "0" ]]; then parallel=(-n "$workers" --dist loadfile --no-loadscope-reorder); fi
exec scripts/loopback.sh .venv/bin/python -m pytest ${parallel[@]+"${parallel[@]}"} ${tier[@]+"${tier[@]}"} ${args[@]+"${args[@]}"}
