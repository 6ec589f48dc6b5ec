#!/bin/bash
# Runs every test binary in the payload's tests/ directory, verbosely, one after the other, and
# ends with one summary line "vm-PROFILE: N passed, N failed, N skipped". A skipped test fails
# the suite: in the VM every test has what it needs, so a skip means something is missing.
# DMSIZE_RUN (a go test -run pattern) narrows the run; DMSIZE_SKIP (-test.skip) leaves tests
# out of it: they are not run, and not counted. DMSIZE_RUN_<binary> and DMSIZE_SKIP_<binary>
# do the same for one test binary; DMSIZE_BINARIES names the binaries to run.
set -uo pipefail
payload=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
export DMSIZE_PAYLOAD=$payload PATH="$payload/guest:$PATH"
# shellcheck source=/dev/null
[ -f "$payload/env" ] && set -a && . "$payload/env" && set +a
profile=$(cat "$payload/profile" 2>/dev/null || echo vm)
# The guest has no systemd, so its mounts are private; a systemd host's are shared.
if [ "${DMSIZE_SHARED_ROOT:-}" = 1 ]; then
	mount --make-rshared / || exit 1
	echo "=== / is rshared, as systemd makes it"
fi
mkdir -p "$payload/out"
pass=0 fail=0 skip=0 broken=0 bench=0
for bin in "$payload"/tests/*.test; do
	[ -x "$bin" ] || continue
	name=$(basename "$bin" .test)
	# DMSIZE_BINARIES (names, e.g. "dm graphdriver") narrows the run to those test binaries.
	if [ -n "${DMSIZE_BINARIES:-}" ] && [[ " $DMSIZE_BINARIES " != *" $name "* ]]; then
		continue
	fi
	echo "=== binary $name"
	args=(-test.v -test.timeout "${DMSIZE_TEST_TIMEOUT:-75m}")
	# DMSIZE_RUN_<binary> / DMSIZE_SKIP_<binary> narrow one binary, instead of DMSIZE_RUN/SKIP.
	run_var=DMSIZE_RUN_$name skip_var=DMSIZE_SKIP_$name
	run=${!run_var:-${DMSIZE_RUN:-}} skip=${!skip_var:-${DMSIZE_SKIP:-}}
	[ -n "$run" ] && args+=(-test.run "$run")
	[ -n "$skip" ] && args+=(-test.skip "$skip")
	[ -n "${DMSIZE_BENCH:-}" ] && args+=(-test.bench "$DMSIZE_BENCH" -test.benchtime "${DMSIZE_BENCHTIME:-1x}")
	start=$SECONDS
	(cd "$payload/tests" && "$bin" "${args[@]}") 2>&1 | tee "$payload/out/$name.log"
	rc=${PIPESTATUS[0]}
	p=$(grep -c '^--- PASS' "$payload/out/$name.log")
	f=$(grep -c '^--- FAIL' "$payload/out/$name.log")
	s=$(grep -c '^--- SKIP' "$payload/out/$name.log")
	b=$(grep -cE '^Benchmark[^ ]*[[:space:]]+[0-9]+[[:space:]]' "$payload/out/$name.log")
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s)) bench=$((bench + b))
	echo "=== binary $name: exit $rc, $p passed, $f failed, $s skipped, $b benchmarks in $((SECONDS - start))s"
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then broken=$((broken + 1)); fi
done
[ $((pass + fail + skip + bench)) -gt 0 ] || { echo "vm-$profile: no tests ran"; exit 1; }
[ $bench = 0 ] || echo "vm-$profile: $bench benchmark results (in out/*.log)"
echo "vm-$profile: $pass passed, $((fail + broken)) failed, $skip skipped"
[ $fail = 0 ] && [ $broken = 0 ] && [ $skip = 0 ]
