#!/usr/bin/env bash
# Set up (if needed) and run the default benchmark: snakemake --cores all.
# Extra arguments go to snakemake, e.g. scripts/run.sh --configfile config/smoke.yaml
# Runs again after an interruption (kill -9 included) with nothing to clean up, and in a
# copied or moved checkout (the venv is used by its path, not by its activate script).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export VIRTUAL_ENV="$PWD/.venv" PATH="$PWD/.venv/bin:$PATH"
# Snakemake reads --configfile files before the Snakefile runs; a broken one is named here, with its line
python -m mibench_core.cli yaml-check "$@"
exec python -m snakemake --cores all "$@"
