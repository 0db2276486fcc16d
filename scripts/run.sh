#!/usr/bin/env bash
# The main job: install missing Debian packages, build the "release" preset
# (optimised, jemalloc, no sanitizers) and run the fragmentation benchmark,
# `iommig-bench frag`: the seed000 scenario by default, in every mode (no
# DMA, legacy DMA, IOMAP, IOMAP non-blocking) side by side. It prints the
# summary table on stdout and writes the results folder
# ./frag-results/<scenario>-seed<N>/ under the current directory.
#
#   scripts/run.sh [iommig-bench frag options]
#   scripts/run.sh --scenario datacenter --mem 16G
#   scripts/run.sh --help
#
# Arguments go to `iommig-bench frag` unchanged; relative paths in them
# (--scenario FILE, --out DIR) are relative to the directory it is run
# from. Works from any directory. Build messages go to stderr so that
# stdout is the benchmark's report. The earlier main job, the buddyinfo
# example, is build/release/examples/buddyinfo once this has built.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=${IOMMIG_JOBS:-2}

"$ROOT/scripts/install-deps.sh" >&2
# Presets are found from the source directory; the benchmark runs from the
# caller's, where its results folder goes.
(
	cd "$ROOT"
	cmake --preset release
	cmake --build --preset release -j "$JOBS"
) >&2
exec "$ROOT/build/release/bench/iommig-bench" frag "$@"
