#!/usr/bin/env bash
# Install the Debian 12 (bookworm) packages libiommig needs to build, test
# and benchmark. Idempotent: checks every package with dpkg-query and runs
# apt-get (update once, then install) only for what is missing; prints
# nothing when everything is already there.
#
# Runs as root, or through sudo when it exists. Set IOMMIG_SKIP_DEPS=1 to
# skip the whole step (e.g. on a machine that is not Debian but has the
# libraries some other way).
set -euo pipefail

# package             why
PACKAGES=(
	build-essential   # gcc, make, libc headers, binutils (objdump)
	cmake             # build system, ctest, the find_package(iommig) config
	pkg-config        # finds liburcu/cmocka/jemalloc; the installed iommig.pc
	libcmocka-dev     # every unit and integration test
	liburcu-dev       # RCU read sides, grace periods, call_rcu
	uthash-dev        # header-only hash tables used inside the library
	libjemalloc-dev   # baseline and metadata arenas in the release benchmarks
	gnuplot-nox       # iommig-bench frag: plots of the time series (optional: skipped when absent)
)

if [[ ${IOMMIG_SKIP_DEPS:-0} == 1 ]]; then
	exit 0
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "install-deps: dpkg-query not found: this script supports Debian 12 (and derivatives) only." >&2
	echo "install-deps: install the equivalents of: ${PACKAGES[*]}; then rerun with IOMMIG_SKIP_DEPS=1." >&2
	exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
	if [[ $status != installed ]]; then
		missing+=("$pkg")
	fi
done

if ((${#missing[@]} == 0)); then
	exit 0
fi

echo "install-deps: missing Debian packages: ${missing[*]}"

if ((EUID == 0)); then
	as_root=()
elif command -v sudo >/dev/null 2>&1; then
	as_root=(sudo)
else
	echo "install-deps: not root and sudo is not installed; as root, run:" >&2
	echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
	exit 1
fi

apt_get=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get
	-o DPkg::Lock::Timeout=300 -q -y)

"${apt_get[@]}" update
"${apt_get[@]}" install --no-install-recommends "${missing[@]}"

# Fail loudly if apt-get "succeeded" without installing something.
for pkg in "${missing[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
	if [[ $status != installed ]]; then
		echo "install-deps: $pkg is still not installed" >&2
		exit 1
	fi
done
echo "install-deps: installed ${missing[*]}"
