#!/usr/bin/env bash
# Set up (if needed) and run the test suite (lint included). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source .venv/bin/activate
ruff check .
ruff format --check .
exec pytest "$@"
