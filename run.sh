#!/usr/bin/env bash
# The two commands of the README:
#   ./run.sh demo    set up what the demo needs, then run the live demo (extra args go to it)
#   ./run.sh test    set everything up, then run the whole test suite (extra args go to pytest)
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup.sh

what="${1:-}"; shift || true
case "$what" in
    demo)  setup_demo; exec "$VENV/bin/python" -m demo "$@" ;;
    test)  setup_all; exec "$VENV/bin/python" -m pytest "$@" ;;
    setup) setup_all ;;
    *)     echo "usage: ./run.sh demo | test [pytest args] | setup" >&2; exit 2 ;;
esac
