# tests/lib/common.sh - sourced by integration tests.
# Gives: a per-run scratch dir ($T), pass/fail accounting that ends with
# "N passed, N failed", and cleanup on exit. Tests must not touch the root
# network namespace; those that make namespaces use the prefix $WT (unique
# per run) and register their cleanup with at_exit.
set -u

T=$(mktemp -d "/tmp/weft-test.XXXXXX")
WT="wt$$-"
_passed=0
_failed=0
_exit_hooks=()

at_exit() { _exit_hooks+=("$*"); }

_run_exit_hooks() {
	local i
	for ((i = ${#_exit_hooks[@]} - 1; i >= 0; i--)); do
		eval "${_exit_hooks[$i]}" || true
	done
	rm -rf "$T"
}
trap _run_exit_hooks EXIT
trap 'exit 130' INT TERM

pass() { _passed=$((_passed + 1)); echo "ok   $*"; }
fail() { _failed=$((_failed + 1)); echo "FAIL $*"; }

# check NAME CMD...: the command must succeed.
check() { local n=$1; shift; if "$@" >"$T/out" 2>&1; then pass "$n"; else fail "$n"; sed 's/^/     | /' "$T/out"; fi; }

# expect_rc NAME RC PATTERN CMD...: exit code RC and stdout+stderr matching
# the extended regex PATTERN.
expect_rc() {
	local name=$1 want=$2 pat=$3 rc; shift 3
	"$@" >"$T/out" 2>&1
	rc=$?
	if [ "$rc" = "$want" ] && grep -qE -- "$pat" "$T/out"; then
		pass "$name"
	else
		fail "$name (rc=$rc, want $want)"
		sed 's/^/     | /' "$T/out"
	fi
}

# finish: print the summary line and exit with its status.
finish() {
	echo "$_passed passed, $_failed failed"
	[ "$_failed" = 0 ]
	exit $?
}

# clean_leftover_runs DIRPREFIX NSPREFIX FN: the leftovers of killed runs,
# found by their run dirs DIRPREFIX<pid> whose test (pid) is gone: FN DIR
# (stops what the run started, by the pids in DIR), then the run's
# namespaces NSPREFIX<pid>-*, then DIR.
clean_leftover_runs() {
	local d pid ns
	for d in "$1"*; do
		[ -d "$d" ] || continue
		pid=${d#"$1"}
		kill -0 "$pid" 2>/dev/null && continue
		"$3" "$d"
		for ns in $(ip netns list | awk '{print $1}' | grep -E "^$2${pid}-"); do ip netns del "$ns"; done
		rm -rf "$d"
	done
}

need_root() {
	if [ "$(id -u)" != 0 ]; then
		echo "skipped: needs root"
		exit 77
	fi
}

# within SECS CMD...: run CMD every 0.1 s until it succeeds, at most SECS
# seconds (then once more, so its output is the last attempt's).
within() {
	local secs=$1 end
	shift
	end=$(($(date +%s%N) + secs * 1000000000))
	while :; do
		"$@" && return 0
		[ "$(date +%s%N)" -lt "$end" ] || break
		sleep 0.1
	done
	"$@"
}
