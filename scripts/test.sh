#!/usr/bin/env bash
# Build libiommig and run every test, twice: under AddressSanitizer +
# UndefinedBehaviorSanitizer (preset "debug") and under ThreadSanitizer
# (preset "tsan"). Each run includes install.find_package, which installs
# the build to a scratch prefix and builds a consumer with find_package()
# and pkg-config. Installs missing Debian packages first.
#
#   scripts/test.sh              both presets
#   scripts/test.sh debug        only the named presets
#   IOMMIG_JOBS=4 scripts/test.sh
#
# Works from any directory. Exits non-zero if any step fails, after
# running what it can and printing a summary.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
JOBS=${IOMMIG_JOBS:-2}
PRESETS=("$@")
((${#PRESETS[@]})) || PRESETS=(debug tsan)

summary=()
failed=0
start_all=$SECONDS

# step <name> <command...>: run, time and record one step.
step() {
	local name=$1 start=$SECONDS rc
	shift
	echo
	echo "==== $name"
	"$@"
	rc=$?
	if ((rc == 0)); then
		summary+=("$(printf 'PASS  %-28s %4ds' "$name" $((SECONDS - start)))")
	else
		summary+=("$(printf 'FAIL  %-28s %4ds  (exit %d)' "$name" $((SECONDS - start)) "$rc")")
		failed=1
	fi
	return "$rc"
}

# ThreadSanitizer (gcc 12) cannot map its shadow memory when the kernel
# randomises mmap bases with more than 28 bits (vm.mmap_rnd_bits, raised by
# some newer kernels); it dies with "unexpected memory mapping". Run the
# TSan tests without ASLR then, if this host allows it.
tsan_wrapper() {
	local bits
	bits=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)
	if ((bits > 28)); then
		if setarch "$(uname -m)" -R true 2>/dev/null; then
			echo "test.sh: vm.mmap_rnd_bits=$bits: running TSan tests with ASLR off (setarch -R)" >&2
			echo setarch "$(uname -m)" -R
		else
			echo "test.sh: vm.mmap_rnd_bits=$bits and ASLR cannot be turned off here; TSan may fail" \
				"(fix: sysctl vm.mmap_rnd_bits=28)" >&2
		fi
	fi
}

print_summary() {
	echo
	echo "==== summary ($((SECONDS - start_all))s)"
	printf '%s\n' "${summary[@]}"
	if ((failed)); then
		echo "test.sh: FAILED"
	else
		echo "test.sh: all passed"
	fi
}

if ! step "install-deps" "$ROOT/scripts/install-deps.sh"; then
	print_summary
	exit 1
fi

for preset in "${PRESETS[@]}"; do
	step "$preset: configure" cmake --preset "$preset" || continue
	step "$preset: build" cmake --build --preset "$preset" -j "$JOBS" || continue
	wrapper=()
	if [[ $preset == tsan ]]; then
		read -r -a wrapper <<<"$(tsan_wrapper)"
	fi
	step "$preset: test" "${wrapper[@]}" ctest --preset "$preset" -j "$JOBS"
done

print_summary
exit "$failed"
