#!/bin/sh
# SPDX-License-Identifier: MIT
# The command-line tests of iommig-bench frag, one ctest test per TEST
# (tests/bench/CMakeLists.txt registers them). POSIX sh, coreutils, grep
# and awk only: no python, no gnuplot needed.
#
#   frag_cli.sh TEST BENCH JSON_CHECK SRCDIR WORKDIR
#
# TEST: tiny, deterministic, bad_option, bad_scenario,
# print_scenario_roundtrip, help, trace.
# WORKDIR is emptied first. Each check that could pass vacuously is also
# run once on a broken input and must then fail ("control").
# A sanitizer report on the bench's stderr fails the test even when the
# exit status does not show it.

TEST=$1 BENCH=$2 JSON_CHECK=$3 SRCDIR=$4 WORK=$5
if [ $# -ne 5 ]; then
	echo "usage: frag_cli.sh TEST BENCH JSON_CHECK SRCDIR WORKDIR" >&2
	exit 2
fi
MODES="nodma legacy iomap iomap-nonblock"

fail() {
	echo "FAIL ($TEST): $*" >&2
	exit 1
}

rm -rf "$WORK" && mkdir -p "$WORK" || fail "cannot create $WORK"
cd "$WORK" || fail "cannot cd $WORK"

# bench NAME ARGS...: runs iommig-bench, stdout in NAME.out, stderr in
# NAME.err, exit status in $rc. Fails the test on a sanitizer report.
bench() {
	name=$1
	shift
	"$BENCH" "$@" >"$name.out" 2>"$name.err"
	rc=$?
	if grep -E -q 'ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer|ThreadSanitizer:|runtime error:' "$name.err"; then
		cat "$name.err" >&2
		fail "sanitizer report from: iommig-bench $*"
	fi
}

# expect_exit CODE FIXED_TEXT ARGS...: iommig-bench ARGS exits CODE and
# says FIXED_TEXT (a fixed string) on stderr. Returns 1 with a message
# instead of failing, so that controls can check it rejects.
expect_exit() {
	want=$1 text=$2
	shift 2
	bench expect "$@"
	if [ "$rc" -ne "$want" ]; then
		echo "iommig-bench $*: exit $rc, expected $want; stderr:" >&2
		cat expect.err >&2
		return 1
	fi
	if ! grep -F -q -- "$text" expect.err; then
		echo "iommig-bench $*: stderr lacks '$text'; it is:" >&2
		cat expect.err >&2
		return 1
	fi
	echo "ok: iommig-bench $* -> exit $want, '$text'"
	return 0
}

# is_png FILE: starts with the 8-byte PNG signature.
is_png() {
	[ "$(od -An -tx1 -N8 "$1" | tr -d ' \n')" = 89504e470d0a1a0a ]
}

# check_results DIR: the results folder of a run of every mode. Returns 1
# with the reason.
check_results() {
	d=$1
	for f in summary.txt summary.json scenario.txt; do
		[ -s "$d/$f" ] || { echo "$d/$f missing or empty" >&2; return 1; }
	done
	"$JSON_CHECK" "$d/summary.json" || return 1
	for m in $MODES; do
		csv=$d/$m/series.csv
		[ -f "$csv" ] || { echo "$csv missing" >&2; return 1; }
		# header step,phase,...; at least 2 rows, each as wide as the header
		awk -F, -v f="$csv" '
			NR == 1 { if ($0 !~ /^step,phase,/) { print f ": header: " $0; bad = 1; exit }
				  n = NF; next }
			NF != n { print f ":" NR ": " NF " fields, header has " n; bad = 1; exit }
			END { if (!bad && NR < 3) { print f ": " NR - 1 " rows, want >= 2"; bad = 1 }
			      exit bad }' "$csv" >&2 || return 1
		# exactly one lost_writes line for the mode, and its value is 0
		n=$(grep -c "\"mode\":\"$m\",.*\"metric\":\"lost_writes\"," "$d/summary.json")
		[ "$n" -eq 1 ] || { echo "$m: $n lost_writes lines in summary.json" >&2; return 1; }
		grep -q "\"mode\":\"$m\",.*\"metric\":\"lost_writes\",\"value\":0[,}]" "$d/summary.json" ||
			{ echo "$m: lost writes:" >&2; grep "\"mode\":\"$m\",.*lost_writes" "$d/summary.json" >&2; return 1; }
		set -- "$d/$m"/memmap-*.png
		[ -f "$1" ] || { echo "$d/$m: no memmap-*.png" >&2; return 1; }
	done
	set -- "$d"/memmap-*.png
	[ -f "$1" ] || { echo "$d: no side-by-side memmap-*.png" >&2; return 1; }
	for png in "$d"/memmap-*.png "$d"/*/memmap-*.png; do
		is_png "$png" || { echo "$png: not a PNG" >&2; return 1; }
	done
	return 0
}

# control WHAT: check_results must reject the copy $WORK/ctl (broken by
# the caller as WHAT).
control() {
	if check_results ctl 2>ctl.why; then
		fail "control: check_results accepted a results folder with $1"
	fi
	echo "ok: control rejected: $1 ($(head -n 1 ctl.why))"
	rm -rf ctl
}

# strip_t_wall CSV: the CSV without its third column, which must be t_wall.
strip_t_wall() {
	awk -F, 'NR == 1 && $3 != "t_wall" { print "column 3 is not t_wall: " $0 > "/dev/stderr"; exit 1 }
		 { out = $1 "," $2; for (i = 4; i <= NF; i++) out = out "," $i; print out }' "$1"
}

case $TEST in
trace)
	# --trace writes each mode's last events as Chrome/Perfetto JSON: one
	# timeline with the MM, IOMMU and DMA migration events in it.
	bench run frag --scenario tiny --mode legacy,iomap --trace 100000 --quiet --out "$WORK/out"
	[ "$rc" -eq 0 ] || { cat run.err >&2; fail "frag --trace: exit $rc"; }
	for m in legacy iomap; do
		t=$WORK/out/tiny-seed1/$m/trace.json
		[ -s "$t" ] || fail "no $t"
		[ "$(head -c 16 "$t")" = '{"traceEvents":[' ] || fail "$t: not a trace"
		[ "$(tail -c 2 "$t" | tr -d '\n')" = '}' ] || fail "$t: not closed"
		for ev in mm_page_alloc mm_page_free iommu_map iommu_unmap mm_compaction_begin; do
			grep -q "\"name\":\"$ev\"" "$t" || fail "$t: no $ev event"
		done
	done
	# only IOMAP's DMA pages migrate through the DMA layer
	t=$WORK/out/tiny-seed1/iomap/trace.json
	grep -q '"name":"dma_migratepagecopy"' "$t" || fail "$t: no dma_migratepagecopy"
	grep -q '"name":"dma_migratepagecopy"' "$WORK/out/tiny-seed1/legacy/trace.json" &&
		fail "legacy: a DMA page migrated"
	expect_exit 2 "bad --trace" frag --trace 0 || fail "--trace 0 accepted"
	echo "ok: traces"
	;;

tiny)
	bench run frag --scenario tiny --quiet --out "$WORK/out"
	[ "$rc" -eq 0 ] || { cat run.err >&2; fail "frag --scenario tiny: exit $rc"; }
	dir=$WORK/out/tiny-seed1
	[ -d "$dir" ] || fail "no $dir (results folder is DIR/<scenario>-seed<N>)"
	check_results "$dir" || fail "results in $dir"
	echo "ok: $dir"

	cp -R "$dir" ctl && sed 's/"metric":"lost_writes","value":0/"metric":"lost_writes","value":3/' \
		"$dir/summary.json" >ctl/summary.json
	control "lost writes"
	cp -R "$dir" ctl && echo '{"bench":"frag","value":1,}' >>ctl/summary.json
	control "a trailing comma in summary.json"
	cp -R "$dir" ctl && { printf 'XPNG'; tail -c +5 "$dir/iomap/memmap-load_end.png"; } \
		>ctl/iomap/memmap-load_end.png
	control "a corrupt PNG signature"
	cp -R "$dir" ctl && head -n 2 "$dir/legacy/series.csv" >ctl/legacy/series.csv
	control "a series.csv of one row"
	cp -R "$dir" ctl && rm ctl/nodma/series.csv
	control "a mode's series.csv missing"
	;;

deterministic)
	# Without device threads nothing but the seed decides the run.
	for run in a:7 b:7 c:8; do
		tag=${run%%:*} seed=${run#*:}
		bench "$tag" frag --scenario tiny --set device_threads=0 --mode legacy,iomap \
			--seed "$seed" --quiet --out "$WORK/$tag"
		[ "$rc" -eq 0 ] || { cat "$tag.err" >&2; fail "run $tag (seed $seed): exit $rc"; }
	done
	differ=0
	for m in legacy iomap; do
		a=a/tiny-seed7/$m/series.csv b=b/tiny-seed7/$m/series.csv c=c/tiny-seed8/$m/series.csv
		for f in $a $b $c; do
			[ -s "$f" ] || fail "$f missing"
			strip_t_wall "$f" >"$f.cut" || fail "$f"
		done
		[ "$(wc -l <"$a.cut")" -ge 3 ] || fail "$a: fewer than 2 rows"
		cmp "$a.cut" "$b.cut" || { diff "$a.cut" "$b.cut" | head -n 20 >&2;
			fail "$m: seed 7 twice gave different series"; }
		echo "ok: $m: seed 7 twice: same series (t_wall aside)"
		if ! cmp -s "$a.cut" "$c.cut"; then
			differ=1
		fi
	done
	[ "$differ" -eq 1 ] || fail "seeds 7 and 8 gave the same series: the comparison cannot tell runs apart"
	echo "ok: control: seed 8 gives a different series"
	;;

bad_option)
	expect_exit 2 "option '--bogus' is not known" frag --bogus || fail "unknown option"
	expect_exit 2 "bad --mem '3X'" frag --mem 3X || fail "bad --mem"
	expect_exit 2 "mem: 30M: must be a multiple of 4M" frag --mem 30M || fail "--mem not a multiple of 4M"
	expect_exit 2 "unknown mode 'foo'" frag --scenario tiny --mode legacy,foo || fail "bad --mode"
	expect_exit 2 "unknown mode suffix in 'iomap+fast'" frag --scenario tiny --mode iomap+fast ||
		fail "bad --mode suffix"
	expect_exit 2 "bad --compaction 'maybe'" frag --scenario tiny --compaction maybe || fail "bad --compaction"
	expect_exit 2 "bad --seed 'x1'" frag --seed x1 || fail "bad --seed"
	expect_exit 2 "unexpected argument 'extra'" frag --scenario tiny extra || fail "stray argument"
	if expect_exit 2 "not known" frag --help >/dev/null 2>&1; then
		fail "control: expect_exit accepted 'frag --help' as an error"
	fi
	echo "ok: control: a valid command line is not taken for an error"
	;;

bad_scenario)
	s=$SRCDIR
	expect_exit 2 "$s/unknown_key.txt:3: unknown key 'dma_count'" frag --scenario "$s/unknown_key.txt" ||
		fail "unknown key"
	expect_exit 2 "$s/bad_fraction.txt:4: bad value '1.2' for dma_share" frag --scenario "$s/bad_fraction.txt" ||
		fail "bad fraction"
	expect_exit 2 "$s/no_equals.txt:3: expected 'key = value'" frag --scenario "$s/no_equals.txt" ||
		fail "line without '='"
	expect_exit 2 "$s/key_twice.txt:4: key 'mem' given twice (first on line 2)" frag --scenario "$s/key_twice.txt" ||
		fail "key given twice"
	# An error about several keys names the file only (docs/scenarios.md).
	expect_exit 2 "$s/shares_over.txt: anon_share + file_share" frag --scenario "$s/shares_over.txt" ||
		fail "shares over 0.98"
	grep -F -q "must be at most 0.98" expect.err || fail "shares over 0.98: no reason given"
	expect_exit 2 "$s/no_such_scenario.txt: cannot open" frag --scenario "$s/no_such_scenario.txt" ||
		fail "missing file"
	if expect_exit 2 "unknown_key.txt:2:" frag --scenario "$s/unknown_key.txt" >/dev/null 2>&1; then
		fail "control: expect_exit accepted a wrong line number"
	fi
	echo "ok: control: a wrong line number is noticed"
	;;

print_scenario_roundtrip)
	bench list frag --list-scenarios
	[ "$rc" -eq 0 ] || fail "--list-scenarios: exit $rc"
	grep -qx seed000 list.out && grep -qx tiny list.out || fail "--list-scenarios lacks seed000 or tiny"
	for p in $(cat list.out); do
		bench "$p.1" frag --scenario "$p" --print-scenario
		[ "$rc" -eq 0 ] && [ -s "$p.1.out" ] || fail "$p: --print-scenario: exit $rc"
		cp "$p.1.out" "$p.txt"
		bench "$p.2" frag --scenario "./$p.txt" --print-scenario
		[ "$rc" -eq 0 ] || { cat "$p.2.err" >&2; fail "$p: printed scenario does not load: exit $rc"; }
		cmp "$p.1.out" "$p.2.out" || { diff "$p.1.out" "$p.2.out" >&2; fail "$p: round trip differs"; }
		echo "ok: $p: printed, loaded, printed again: identical"
	done
	bench ctl frag --scenario ./seed000.txt --set steps=7 --print-scenario
	[ "$rc" -eq 0 ] || fail "--set steps=7: exit $rc"
	if cmp -s seed000.1.out ctl.out; then
		fail "control: --set steps=7 printed the same scenario"
	fi
	echo "ok: control: a changed key prints differently"
	;;

help)
	bench h1 frag --help
	[ "$rc" -eq 0 ] || fail "frag --help: exit $rc"
	bench h2 help frag
	[ "$rc" -eq 0 ] || fail "iommig-bench help frag: exit $rc"
	for out in h1.out h2.out; do
		for opt in --scenario --mode --mem --seed --duration --out --json --quiet \
			   --compaction --set --list-scenarios --print-scenario; do
			grep -q -- "^ *${opt}[ =]" "$out" || fail "$out: no line for $opt"
		done
	done
	if grep -q -- "^ *--no-such-option[ =]" h1.out; then
		fail "control: the help lists --no-such-option"
	fi
	echo "ok: frag --help and help frag list every option"
	;;

*)
	fail "unknown test '$TEST'"
	;;
esac
echo "PASS ($TEST)"
