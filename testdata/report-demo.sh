#!/bin/sh
# make report-demo: a fleet of 4 runners shares 20 steps of one session
# through 'ckpt queue'; runner-3 is killed with SIGKILL in the middle of a
# step, which another runner then runs again. The run's 'ckpt report --html'
# page, and a screenshot of it taken by headless Chromium, are written to
# OUTDIR. Usage: report-demo.sh [CKPT [OUTDIR]]; CKPT defaults to the ckpt on
# $PATH, OUTDIR to ./report-demo; $CHROMIUM names the browser (default:
# chromium, else chromium-browser). The session lives in a temporary
# directory, removed at the end; the demo exits non-zero if the run or the
# page is not what it expects.
set -eu

if [ $# -gt 0 ]; then
	PATH="$(cd "$(dirname "$1")" && pwd):$PATH"
fi
out=${2:-report-demo}
ckpt=$(command -v ckpt) || { echo "report-demo: no ckpt on \$PATH" >&2; exit 1; }
command -v setsid > /dev/null || { echo "report-demo: setsid (util-linux) is needed" >&2; exit 1; }
chromium=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
mkdir -p "$out"
out=$(cd "$out" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/ckpt-report-demo.XXXXXX")
pgids=
cleanup() {
	for g in $pgids; do kill -KILL "-$g" 2> /dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export CKPT_REPOSITORY="$work/sessions"
unset CKPT_SESSION CKPT_KEY CKPT_RUNNER
cd "$work"

fail() {
	echo "report-demo: FAILED: $*" >&2
	exit 1
}

# The steps: names as a Go test suite's packages and tests would have them.
cat > steps.txt << 'EOF'
build
vet
unit/checkpoint
unit/storage
unit/storage/s3store
unit/repository
unit/cmd
fuzz/FuzzReader
fuzz/FuzzManifest
e2e/create-save-load
e2e/step-resume
e2e/queue-fleet
e2e/break-lock
e2e/gc
e2e/flaky-upload
integration/s3-versitygw
integration/s3-faults
docs/readme-examples
package/linux-amd64
package/linux-arm64
EOF

# One step: sleeps a random 0.3 to 2.5 seconds, saying what it does; the
# flaky upload fails. Its command line is the same on every runner: a step
# passes for a key and a command line, and is not run again for them.
cat > work.sh << 'EOF'
#!/bin/sh
runner=$DEMO_RUNNER
echo "$runner $CKPT_STEP" >> started.log
echo "$CKPT_STEP: started on $runner"
sleep "$(awk -v seed="$$" 'BEGIN { srand(seed); printf "%.1f", 0.3 + rand() * 2.2 }')"
if [ "$CKPT_STEP" = e2e/flaky-upload ]; then
	echo "upload: connection reset by peer (attempt 1 of 1)" >&2
	echo "$CKPT_STEP: FAIL" >&2
	exit 1
fi
echo "$CKPT_STEP: ok"
EOF
chmod +x work.sh

key=$(printf 'ckpt report demo\n' | cksum | cut -d' ' -f1)
S=$(ckpt create --prefix fleet --title "report demo: 4 runners share 20 steps; runner-3 is killed" --key "$key")
echo "ckpt report demo: 4 runners, 20 steps, session $S"
echo "  ckpt:       $ckpt"
echo "  repository: $CKPT_REPOSITORY"

# Each runner in a process group of its own, so that runner-3's can be
# killed whole: ckpt queue and the step it runs.
pids=
for i in 1 2 3 4; do
	DEMO_RUNNER=runner-$i setsid ckpt queue "$S" --from steps.txt --key "$key" --runner "runner-$i" -- ./work.sh {} > "runner-$i.log" 2>&1 &
	pids="$pids $!"
	pgids="$pgids $!"
done

# Kill runner-3 in the middle of its second step.
i=0
until [ "$(cat started.log 2> /dev/null | grep -c '^runner-3 ')" -ge 2 ]; do
	i=$((i + 1))
	[ $i -le 300 ] || fail "runner-3 did not start a second step within 30 seconds"
	sleep 0.1
done
sleep 0.2
killed=$(grep '^runner-3 ' started.log | tail -1 | cut -d' ' -f2)
runner3=$(echo $pids | cut -d' ' -f3)
echo "runner-3 runs $killed: SIGKILL to its process group $runner3"
kill -KILL "-$runner3"

n=0
for p in $pids; do
	n=$((n + 1))
	if wait "$p"; then
		echo "  runner-$n: exit 0"
	else
		echo "  runner-$n: exit $?"
	fi
done
pgids=

ckpt steps "$S" > steps.out
sed 's/^/    /' steps.out
grep -Eq "^$killed +passed +0 +2 " steps.out || fail "$killed, whose runner was killed, did not pass on its second attempt"
grep -Eq '^e2e/flaky-upload +failed ' steps.out || fail "e2e/flaky-upload did not fail"
[ "$(grep -Ec ' passed ' steps.out)" = 19 ] || fail "19 steps should have passed"

html="$out/ckpt-report.html"
png="$out/ckpt-report.png"
ckpt report "$S" --html "$html"
for r in runner-1 runner-2 runner-3 runner-4; do
	grep -q "<b>$r</b>" "$html" || fail "the page has no lane for $r"
done
grep -q 'class="bar crashed' "$html" || fail "the page shows no crashed attempt"

if [ -z "$chromium" ]; then
	echo "report-demo: no chromium to take the screenshot with (apt-get install chromium, or set \$CHROMIUM)" >&2
	echo "$html"
	exit 1
fi
rm -f "$png"
# A profile and a HOME of its own, and no network: the page needs none.
HOME="$work/home" "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
	--disable-background-networking --disable-component-update --disable-sync \
	--user-data-dir="$work/chromium" --window-size=1400,900 --hide-scrollbars \
	--screenshot="$png" "file://$html" > chromium.log 2>&1 ||
	{ cat chromium.log >&2; fail "chromium failed"; }
[ -s "$png" ] || { cat chromium.log >&2; fail "chromium wrote no screenshot"; }
echo "$html"
echo "$png"
