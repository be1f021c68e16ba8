#!/bin/sh
# make demo: a four-step run, killed with SIGKILL in the middle of a step,
# then resumed. Usage: demo.sh [CKPT]; CKPT defaults to the ckpt on $PATH.
# Everything happens in a temporary directory, removed at the end; the demo
# exits non-zero if anything it shows is not what it expects.
set -eu

if [ $# -gt 0 ]; then
	PATH="$(cd "$(dirname "$1")" && pwd):$PATH"
fi
ckpt=$(command -v ckpt) || { echo "demo: no ckpt on \$PATH" >&2; exit 1; }
command -v setsid > /dev/null || { echo "demo: setsid (util-linux) is needed" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/ckpt-demo.XXXXXX")
pgid=
cleanup() {
	[ -z "$pgid" ] || kill -KILL "-$pgid" 2> /dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export CKPT_REPOSITORY="$work/sessions"
unset CKPT_SESSION CKPT_KEEP
cd "$work"

section() { printf '\n=== %s\n' "$*"; }
indent() { sed 's/^/    /' "$@"; }
fail() {
	echo "demo: FAILED: $*" >&2
	exit 1
}
# expect FILE REGEX...: each extended regular expression matches a line of FILE.
expect() {
	f=$1
	shift
	for re in "$@"; do
		grep -Eq -- "$re" "$f" || fail "no line matching '$re' in $f"
	done
}

# A step of the job: says what it does, counts its runs, takes some time.
cat > work.sh << 'EOF'
#!/bin/sh
echo "$1: started"
echo "$1" >> runs
sleep "$2"
echo "$1: done"
EOF
chmod +x work.sh

# One attempt of the CI job: resume the youngest incomplete session, or
# start one, and run the four steps; a step that passed is skipped.
cat > job.sh << 'EOF'
set -eu
echo $$ > job.pid    # the demo kills this process group
CKPT_SESSION=$(ckpt last --prefix demo --flag incomplete --or-create --title "demo run")
export CKPT_SESSION
echo "job: session $CKPT_SESSION"
ckpt step build       -- ./work.sh build 0.3
ckpt step unit-tests  -- ./work.sh unit-tests 0.3
ckpt step integration -- ./work.sh integration 3
ckpt step package     -- ./work.sh package 0.3
ckpt mark --clear incomplete --set done > /dev/null
echo "job: all steps passed"
EOF

echo "ckpt demo: a resumable run, killed with SIGKILL, resumed"
echo "  ckpt:       $ckpt"
echo "  repository: $CKPT_REPOSITORY"

section "The job (job.sh): every attempt runs the same script"
indent job.sh

section "Attempt 1, in its own process group"
setsid sh job.sh > attempt1.log 2>&1 &
i=0
until [ -s job.pid ] && S=$(ckpt last --prefix demo 2> /dev/null) &&
	ckpt steps "$S" | grep -Eq '^integration +running'; do
	i=$((i + 1))
	[ $i -le 200 ] || fail "the integration step did not start within 20 seconds"
	sleep 0.1
done
pgid=$(cat job.pid)
echo "integration is running: SIGKILL to process group $pgid (the job, ckpt step and its command)"
kill -KILL "-$pgid"
i=0
while kill -0 "-$pgid" 2> /dev/null; do
	i=$((i + 1))
	[ $i -le 100 ] || fail "process group $pgid outlived SIGKILL"
	sleep 0.05
done
pgid=
wait || true
indent attempt1.log
expect attempt1.log '^job: session demo-' '^integration: started$'
! grep -q '^integration: done' attempt1.log || fail "integration finished before the kill"

section "ckpt steps after the kill: the killed step could not record an end; its claim is gone"
ckpt steps "$S" > steps1.txt
indent steps1.txt
expect steps1.txt '^build +passed +0 +1 ' '^unit-tests +passed +0 +1 ' '^integration +crashed +- +1 '
! grep -q '^package' steps1.txt || fail "package ran in attempt 1"

section "Attempt 2: the same job resumes the session"
sh job.sh > attempt2.log 2>&1 || { indent attempt2.log; fail "attempt 2 failed"; }
indent attempt2.log
expect attempt2.log "^job: session $S\$" \
	'^ckpt: skip build \(passed ' '^ckpt: skip unit-tests \(passed ' \
	'^ckpt: step integration: attempt 1, started .* crashed$' \
	'^integration: done$' '^package: done$' '^job: all steps passed$'
! grep -Eq '^(build|unit-tests): started' attempt2.log || fail "a passed step ran again"

section "ckpt steps"
ckpt steps "$S" > steps2.txt
indent steps2.txt
expect steps2.txt '^build +passed ' '^unit-tests +passed ' '^integration +passed +0 +2 ' '^package +passed +0 +1 '

section "ckpt show"
ckpt show "$S" > show.txt
indent show.txt
expect show.txt '^flags: +done$' '^steps: +build passed, unit-tests passed, integration passed, package passed$'

section "ckpt logs $S integration"
ckpt logs "$S" integration | indent

section "Runs of each step's command, over both attempts"
sort runs | uniq -c | indent
[ "$(grep -c '^integration$' runs)" = 2 ] || fail "integration should have run twice"
for step in build unit-tests package; do
	[ "$(grep -c "^$step\$" runs)" = 1 ] || fail "$step should have run once"
done

if ckpt last --prefix demo --flag incomplete > /dev/null 2>&1; then
	fail "a session is still flagged incomplete"
fi
section "OK: the killed run resumed; passed steps were skipped, integration ran again"
