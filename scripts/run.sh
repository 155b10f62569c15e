#!/usr/bin/env bash
# Set up (if needed) and run the default benchmark: snakemake --cores all.
# Extra arguments go to snakemake, e.g. scripts/run.sh --configfile config/smoke.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source .venv/bin/activate
exec snakemake --cores all "$@"
