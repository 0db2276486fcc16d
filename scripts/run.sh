#!/usr/bin/env bash
# The main job: install missing Debian packages, build the "release" preset
# (optimised, jemalloc, no sanitizers) and run the example workload
# build/release/examples/buddyinfo, which prints /proc/buddyinfo,
# /proc/pagetypeinfo and the unusable-free-space index of a simulated
# machine after a seeded allocation workload.
#
#   scripts/run.sh [--mem SIZE] [--seed N] [--ops N]
#
# Arguments go to the program unchanged. Works from any directory. Build
# messages go to stderr so that stdout is the program's report.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
JOBS=${IOMMIG_JOBS:-2}

"$ROOT/scripts/install-deps.sh" >&2
cmake --preset release >&2
cmake --build --preset release -j "$JOBS" >&2
exec "$ROOT/build/release/examples/buddyinfo" "$@"
