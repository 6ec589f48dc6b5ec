#!/bin/bash
# Runs one suite of the VM tests: its shards (integration/vm/shards), each in a VM of its own,
# booted side by side; then prints one table of every test's seconds and exits non-zero if any
# shard failed.
#
#   suite.sh SUITE [--out DIR] [--timeout SECONDS] [--only SHARD]
#
# A shard's payload is its profile's (build/payload-PROFILE, made by `make payload-PROFILE`)
# with its own env: which test binaries, which tests (-test.run / -test.skip), and DMSIZE_LONG
# for the long suite. Each shard's output is printed live, each line behind "[shard] ".
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
suite=${1:?usage: suite.sh SUITE [--out DIR] [--timeout SECONDS] [--only SHARD]}
shift
out=$top/build/vm-run timeout=1800 only=
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || { echo "suite.sh: $1 needs a value" >&2; exit 2; }
	case "$1" in
	--out) out=$2 ;;
	--timeout) timeout=$2 ;;
	--only) only=$2 ;;
	*) echo "suite.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift 2
done

# shards: SUITE SHARD PROFILE BINARIES RUN SKIP, whitespace-separated, "-" for none; RUN and
# SKIP are a pattern for every binary, or BINARY=PATTERN for one.
mapfile -t rows < <(awk -v s="$suite" '$1 == s && $0 !~ /^#/' "$here/shards")
[ ${#rows[@]} -gt 0 ] || { echo "suite.sh: no shards for suite '$suite' in $here/shards" >&2; exit 2; }

# check_shards: every top-level test and fuzz target of every binary a profile's payload has is
# in exactly one shard of the suite (a shard named "-" leaves tests out on purpose), so that
# a new test or a renamed one is never quietly run nowhere.
check_shards() {
	local bad=0 bin name row n _s shard profile bins run skip r k
	for row in "${rows[@]}"; do
		read -r _s shard profile bins run skip <<<"$row"
		echo "$profile"
	done | sort -u | while read -r profile; do
		for bin in "$top/build/payload-$profile"/tests/*.test; do
			[ -x "$bin" ] || continue
			name=$(basename "$bin" .test)
			"$bin" -test.list '.*' 2>/dev/null | grep -E '^(Test|Fuzz)' | while read -r t; do
				n=0
				for row in "${rows[@]}"; do
					read -r _s shard p bins run skip <<<"$row"
					[ "$p" = "$profile" ] || continue
					[ "$bins" = - ] || [[ ",$bins," == *",$name,"* ]] || continue
					for k in run skip; do
						r=${!k}
						case "$r" in -) r= ;; *=*) [ "${r%%=*}" = "$name" ] && r=${r#*=} || r= ;; esac
						printf -v "$k" '%s' "$r"
					done
					[ -z "$run" ] || grep -qE "$run" <<<"$t" || continue
					[ -z "$skip" ] || ! grep -qE "$skip" <<<"$t" || continue
					n=$((n + 1))
				done
				[ "$n" = 1 ] || echo "suite.sh: $name.test $t is in $n shards of suite $suite (integration/vm/shards)"
			done
		done
	done >"$out/shards-check.txt"
	[ -s "$out/shards-check.txt" ] || return 0
	cat "$out/shards-check.txt" >&2
	return 1
}

long=
[ "$suite" = long ] && long=1
# One vCPU a VM: the shards share the host's cores, and a second vCPU each only adds TCG's
# cross-vCPU flushes and guest spinlocks whose holder the host has preempted.
SHARD_CPUS=1
mkdir -p "$out"
check_shards || exit 2
start=$(date +%s)
pids=() names=()
for row in "${rows[@]}"; do
	read -r _ shard profile bins run skip <<<"$row"
	[ "$shard" != - ] || continue
	[ -z "$only" ] || [ "$only" = "$shard" ] || continue
	base=$top/build/payload-$profile
	[ -x "$base/run" ] || { echo "suite.sh: $base missing: make payload-$profile" >&2; exit 2; }
	pl=$top/build/payload-$suite-$shard
	rm -rf "$pl"
	cp -al "$base" "$pl"
	# The env file is a hard link to the profile's: a new file, not a write through the link.
	rm -f "$pl/env"
	{
		cat "$base/env"
		[ "$bins" = - ] || echo "DMSIZE_BINARIES='${bins//,/ }'"
		# PATTERN for every binary, or BINARY=PATTERN for one.
		case "$run" in -) ;; *=*) echo "DMSIZE_RUN_${run%%=*}='${run#*=}'" ;; *) echo "DMSIZE_RUN='$run'" ;; esac
		case "$skip" in -) ;; *=*) echo "DMSIZE_SKIP_${skip%%=*}='${skip#*=}'" ;; *) echo "DMSIZE_SKIP='$skip'" ;; esac
		echo "DMSIZE_LONG='$long'"
		# Benchmarks run once in the long suite, so that none rots, and for real in `make bench`.
		[ -n "$long" ] || echo "DMSIZE_BENCH=''"
	} >"$pl/env"
	mkdir -p "$out"
	rm -f "$out/$suite-$shard.rc"
	(
		DMSIZE_VM_CPUS=${DMSIZE_VM_CPUS:-$SHARD_CPUS} "$here/run.sh" --profile "$profile" --payload "$pl" --timeout "$timeout" --out "$out/$suite-$shard" 2>&1
		echo $? >"$out/$suite-$shard.rc"
	) | sed -u "s/^/[$shard] /" &
	pids+=($!) names+=("$shard")
done
[ ${#pids[@]} -gt 0 ] || { echo "suite.sh: no shard named '$only' in suite '$suite'" >&2; exit 2; }
for p in "${pids[@]}"; do wait "$p"; done

# The table: every top-level test (and benchmark) of every shard, slowest first.
failed=0
echo
echo "=== $suite suite: seconds per test (VM wall time per shard below)"
printf '%-14s %-12s %-48s %8s  %s\n' shard binary test seconds result
for shard in "${names[@]}"; do
	dir=$out/$suite-$shard
	awk -v shard="$shard" '
		/^=== binary [^ ]+$/ { bin = $3 }
		/^--- (PASS|FAIL|SKIP): Test[^ \/]* \(/ {
			s = $4; gsub(/[()s]/, "", s)
			printf "%-14s %-12s %-48s %8.1f  %s\n", shard, bin, $3, s, substr($2, 1, 4)
		}
		/^Benchmark[^ ]*[ \t]+[0-9]+[ \t]/ { printf "%-14s %-12s %-48s %8s  %s\n", shard, bin, $1, "-", "BENCH" }
	' <(tr -d '\r' <"$dir/results.log" 2>/dev/null) | sort -k4,4 -g -r
done
echo
for shard in "${names[@]}"; do
	tr -d '\r' <"$out/$suite-$shard/results.log" 2>/dev/null | awk -v shard="$shard" '
		/^=== binary [^ ]+: exit/ { sub(/:$/, "", $3); printf "%-14s binary %-12s %s\n", shard, $3, substr($0, index($0, "exit")) }'
done
echo
for shard in "${names[@]}"; do
	dir=$out/$suite-$shard
	wall=$(cut -d' ' -f3 "$dir/walltime" 2>/dev/null || echo "?")
	verdict=$(tr -d '\r' <"$dir/results.log" 2>/dev/null | grep -a "^vm-.*passed" | tail -n1)
	rc=$(cat "$out/$suite-$shard.rc" 2>/dev/null)
	[ "$rc" = 0 ] || failed=$((failed + 1))
	printf '%-14s VM wall %7ss  %s%s\n' "$shard" "$wall" "${verdict:-no result}" "$([ "$rc" = 0 ] || echo "  FAILED")"
done
echo "$suite suite: ${#names[@]} shards in $(($(date +%s) - start)) s, $failed failed"
[ "$failed" = 0 ] && exit 0

# CI keeps only the tail of a run: last, each failed test and the last lines it logged
# (file:line), which are its failure, and where the whole log is.
echo
echo "=== $suite suite: what failed (whole logs in $out/$suite-SHARD/results.log)"
for shard in "${names[@]}"; do
	tr -d '\r' <"$out/$suite-$shard/results.log" 2>/dev/null | awk -v shard="$shard" '
		/^=== (RUN|CONT|NAME) / { cur = $3; next }
		/^ +[A-Za-z0-9_]+\.go:[0-9]+: --- tail of / { next }
		/^ +[A-Za-z0-9_]+\.go:[0-9]+: / { if (cur != "") { k = n[cur]++ % 3; last[cur, k] = $0 }; next }
		/^ *--- FAIL: / { f[++nf] = $3; secs[nf] = $4 }
		/^panic: |^FAIL: VM |VM stopped/ { print shard ": " substr($0, 1, 200) }
		END {
			for (i = 1; i <= nf; i++) {
				inner = 1
				for (j = 1; j <= nf; j++) if (index(f[j], f[i] "/") == 1) inner = 0
				if (!inner) continue
				print shard ": --- FAIL: " f[i] " " secs[i]
				m = n[f[i]]; from = m > 3 ? m - 3 : 0
				for (k = from; k < m; k++) print shard ":   " substr(last[f[i], k % 3], 1, 200)
			}
		}'
done | head -n 40
exit 1
