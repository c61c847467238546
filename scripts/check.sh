#!/usr/bin/env bash
# What CI runs after setup: lint, formatting, types, the import contracts, then the tests (extra arguments go to pytest,
# e.g. `bash scripts/check.sh -m "not slow"` for the fast selection). Exit 5 (no test ran) fails.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check . || exit 1
.venv/bin/ruff format --check . || exit 1
.venv/bin/mypy || exit 1
.venv/bin/lint-imports || exit 1
.venv/bin/python -m pytest -q "$@"
status=$?
if [ "$status" -eq 5 ]; then echo "check: pytest ran no tests" >&2; exit 1; fi
exit "$status"
