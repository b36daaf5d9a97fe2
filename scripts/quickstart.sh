#!/usr/bin/env bash
# Set up (if needed) and run the quickstart job: train a conditional DCGAN on the MNIST
# subset, generate 10,000 images as WebDataset shards, and write the report.
# Output: runs/quickstart (or the folder given as $1). Runs Ray on 127.0.0.1 (scripts/loopback.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
out="${1:-runs/quickstart}"
exec scripts/loopback.sh .venv/bin/synth run jobs/quickstart.yaml --out "$out"
