# shellcheck shell=bash
# Helpers for interop scenarios. Sourced by interop/runner and by every
# scenario's `steps` script; they run inside the lab kernel (a UML or the host,
# in a private mount namespace), as root.
#
# Environment set by the runner:
#   REPO          repository root (visible inside the UML: its root is the host fs)
#   ART           this scenario's artifacts folder (logs, snapshots, pcap)
#   SCENARIO_DIR  interop/scenarios/<name> (a matrix scenario: its generated folder)
#   LAB           runtime state (/run/lab), private to this run
#   STEP_TIMEOUT  seconds any single command on a host may take (default 20)
#
# Lab hosts: alice 10.1.0.1 and bob 10.1.0.2 on one veth link (eth0 on each),
# alice-lan 10.1.1.2 behind alice (10.1.1.1) and bob-lan 10.1.2.2 behind bob
# (10.1.2.1), routed, with ip_forward on. alice and bob also each get their
# own mount namespace: own /run (tmpfs), /var/log = $ART/<host>, and the
# daemon's config files bound over /etc/.
#
# API for steps scripts:
#   on HOST CMD...                 run CMD in HOST (bounded by STEP_TIMEOUT)
#   spawn_on HOST LOG CMD...       start CMD in HOST in the background (pid in $spawned)
#   start_strongswan HOST DIR      ipsec start with DIR/ipsec.conf, DIR/ipsec.secrets
#                                  and DIR/strongswan.conf (else interop/conf/strongswan.conf)
#   start_ikev2d HOST DIR [ARG...] our daemon with DIR/ipsec.conf + DIR/ipsec.secrets
#   ikectl_on HOST ARG...          our ikectl against HOST's daemon
#   stop_daemon HOST               stop HOST's daemon (SIGTERM, bounded wait)
#   kill_daemon HOST               SIGKILL HOST's daemon (a crash: its kernel state stays)
#   check "WHAT" CMD...            fail the scenario with WHAT unless CMD succeeds
#   fail "REASON"                  fail the scenario now
#   not CMD...                     succeeds when CMD fails
#   run_logged CMD...              run CMD, copy its output to the log, print it
#   output_has REGEX CMD...        run_logged CMD, succeed when its output matches
#                                  REGEX (grep -E)
#   esp_packets HOST               sum of the ESP SAs' packet counters
#   xfrm_packets HOST PROTO        the same for the SAs of PROTO (esp, ah)
#   snapshot HOST LABEL            save `ip -s xfrm state` + `ip xfrm policy`
#   no_xfrm_state HOST             no SA at all on HOST
#   same_policies HOST LABEL       HOST's policies equal those saved by `snapshot HOST LABEL`
#   wait_until SECONDS "WHAT" CMD... poll CMD until it succeeds, else fail

#
# Adding a scenario: make interop/scenarios/<name>/ with a folder per host
# holding that daemon's files (ipsec.conf, ipsec.secrets, optionally
# strongswan.conf) and a `steps` file. `steps` is bash, sourced with
# `set -eEuo pipefail` in the scenario folder after this file: any command that
# fails (outside `check`, `if`, `||`) fails the scenario naming its line. The
# lab is already up, alice's link is being captured, the daemons are stopped
# and everything is torn down afterwards; steps only start what the scenario
# names and check what it promises. A scenario that needs more than the default
# steps limit (45 s; e.g. waiting for lifetimes) puts its limit in seconds in a
# `steps-timeout` file beside `steps`. A `topology` file saying `nat` puts alice behind a
# NAT: alice 192.168.0.2 -- router 192.168.0.1 | 10.1.0.254 (masquerade, random ports) --
# bob 10.1.0.2 (see interop/runner and interop/scenarios/nat-ikev2d-pair/nat-lib). For example (our daemon against strongSwan):
#
#   start_strongswan bob "$SCENARIO_DIR/bob"
#   start_ikev2d alice "$SCENARIO_DIR/alice"
#   snapshot alice 1-started
#   check "ikectl up host-host" ikectl_on alice up host-host
#   check "ping alice -> bob" on alice ping -c 2 -W 2 10.1.0.2
#   check "ESP on alice" test "$(esp_packets alice)" -gt 0
#   stop_daemon alice
#   check "ikev2d leaves no SA behind" no_xfrm_state alice
#
# Helpers shared by several scenarios (ping_esp; what ikev2d reports, read from `ikectl status
# --json`; up_ping_status; nothing_left) are in interop/scenario-lib.sh, which such a
# `steps` sources.

LAB_HOSTS=(alice bob)
STEP_TIMEOUT=${STEP_TIMEOUT:-20}

log() {
	printf '[lab %s] %s\n' "$(date +%T.%2N)" "$*"
}

fail() {
	log "FAIL: $*"
	[[ -s $ART/failure ]] || printf '%s\n' "$*" >"$ART/failure"
	exit 1
}

# ERR trap of a steps script: fail naming the steps line that failed.
_steps_failed() {
	local status=$1 line=$2 i
	for ((i = 1; i < ${#BASH_SOURCE[@]}; i++)); do
		if [[ ${BASH_SOURCE[i]} == ./steps ]]; then
			line=${BASH_LINENO[i - 1]}
			break
		fi
	done
	((status != 124)) || status="124, timed out"
	fail "steps line $line failed (status $status): $(sed -n "${line}s/^[[:space:]]*//p" ./steps)"
}

not() {
	! "$@"
}

check() {
	local what=$1
	shift
	log "check: $what"
	if "$@"; then
		log "ok: $what"
	else
		fail "$what"
	fi
}

# The command prefix that enters HOST: alice and bob have a mount namespace
# of their own besides the network one; the LAN namespaces only a network one.
_ns_cmd() {
	if [[ -s $LAB/$1/holder ]]; then
		ns_cmd=(nsenter --mount="/proc/$(<"$LAB/$1/holder")/ns/mnt" --net="/run/netns/$1" --)
	else
		ns_cmd=(ip netns exec "$1")
	fi
}

# Starts CMD in HOST's namespaces in the background with no time limit (for
# daemons), output appended to LOG; sets `spawned` to CMD's own pid.
spawn_on() {
	local host=$1 log=$2
	shift 2
	(
		_ns_cmd "$host"
		exec "${ns_cmd[@]}" "$@"
	) >>"$log" 2>&1 &
	spawned=$!
}

on() {
	local ns_cmd
	_ns_cmd "$1"
	shift
	timeout -k 2 "$STEP_TIMEOUT" "${ns_cmd[@]}" "$@"
}

# Runs CMD; its output and exit status go to the log (stderr), the output
# also to stdout. Always succeeds.
# show TITLE CMD...: runs CMD and keeps its output for the reader: logged, and appended to
# $ART/show.txt, which `interop/run --show` prints after the scenario's result line.
show() {
	local title=$1 out rc=0
	shift
	out=$("$@" 2>&1) || rc=$?
	printf '== %s\n%s\n\n' "$title" "$out" >>"$ART/show.txt"
	printf '%s\n' "$out" | sed 's/^/    | /' >&2
	log "$title (exit status $rc)" >&2
	return "$rc"
}

run_logged() {
	local out rc=0
	out=$("$@" 2>&1) || rc=$?
	{
		printf '%s\n' "$out" | sed 's/^/    | /'
		log "(exit status $rc)"
	} >&2
	printf '%s\n' "$out"
}

output_has() {
	local regex=$1 out
	shift
	out=$(run_logged "$@")
	grep -Eq -- "$regex" <<<"$out"
}

wait_until() {
	local secs=$1 what=$2 deadline
	shift 2
	deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || fail "timed out after ${secs}s waiting for $what"
		sleep 0.1
	done
}

snapshot() {
	local host=$1 label=$2 both state policy
	# One command on the host for both (a process start is slow in the UML).
	both=$(on "$host" sh -c 'ip -s xfrm state && echo "--- policy" && ip xfrm policy') ||
		fail "ip -s xfrm state / ip xfrm policy failed on $host"
	state=${both%%--- policy*} policy=${both#*--- policy}
	state=${state%$'\n'} policy=${policy#$'\n'}
	printf '%s\n' "$policy" >"$LAB/$host/policy-$label"
	printf '# ip -s xfrm state (%s, %s)\n%s\n# ip xfrm policy (%s, %s)\n%s\n' \
		"$host" "$label" "$state" "$host" "$label" "$policy" >"$ART/$host/xfrm-$label.txt"
}

no_xfrm_state() {
	local out
	out=$(on "$1" ip xfrm state) || return 1
	[[ -z $out ]] || {
		printf '%s\n' "$out" | sed 's/^/    | /'
		return 1
	}
}

same_policies() {
	local host=$1 label=$2 now
	now=$(on "$host" ip xfrm policy) || return 1
	printf '%s\n' "$now" | diff -u "$LAB/$host/policy-$label" - | sed 's/^/    | /'
	return "${PIPESTATUS[1]}"
}

# Sum of "N(packets)" in the "lifetime current" part of every ESP SA.
esp_packets() {
	xfrm_packets "$1" esp
}

# xfrm_packets HOST PROTO: the same for every SA of PROTO (esp, ah, comp).
xfrm_packets() {
	on "$1" ip -s xfrm state | awk -v proto="proto $2 " '
		/^src /                { sel = 0 }
		index($0, proto)       { sel = 1 }
		/lifetime current:/    { cur = 1; next }
		cur && sel && /\(packets\)/ {
			s = $0; sub(/\(packets\).*/, "", s); sub(/.* /, "", s); sum += s
		}
		{ cur = 0 }
		END { print sum + 0 }'
}

# The daemon running on a host is recorded in $LAB/<host>/daemon as
# "strongswan" or "ikev2d PID"; one per host.
_host_free() {
	[[ ! -s $LAB/$1/daemon ]] || fail "$1 already runs a daemon ($(<"$LAB/$1/daemon"))"
}

_bind_conf() {
	local host=$1 src=$2 dst=$3
	[[ -f $src ]] || fail "missing config file $src"
	on "$host" mount --bind "$src" "$dst" || fail "cannot bind $src over $dst on $host"
}

start_strongswan() {
	local host=$1 dir=$2 conf
	_host_free "$host"
	echo strongswan >"$LAB/$host/daemon"
	_bind_conf "$host" "$dir/ipsec.conf" /etc/ipsec.conf
	_bind_conf "$host" "$dir/ipsec.secrets" /etc/ipsec.secrets
	conf=$dir/strongswan.conf
	[[ -f $conf ]] || conf=$REPO/interop/conf/strongswan.conf
	_bind_conf "$host" "$conf" /etc/strongswan.conf
	log "start strongSwan on $host ($dir)"
	on "$host" ipsec start >>"$ART/$host/starter.log" 2>&1 || fail "ipsec start failed on $host"
	# Waiting on charon's control socket first: polling `ipsec statusall` (a
	# script) would take CPU from charon's start-up.
	wait_until 20 "charon's control socket on $host" on "$host" test -S /run/charon.ctl
	wait_until 20 "charon on $host" on "$host" ipsec statusall
}

start_ikev2d() {
	local host=$1 dir=$2 bin=$REPO/target/debug/ikev2d pid spawned
	shift 2
	[[ -x $bin ]] || fail "$bin is missing (run cargo build first)"
	_host_free "$host"
	log "start ikev2d on $host ($dir) $*"
	spawn_on "$host" "$ART/$host/ikev2d.log" "$bin" --conf "$dir/ipsec.conf" \
		--secrets "$dir/ipsec.secrets" --ctl "/run/ikev2d-$host.ctl" "$@"
	pid=$spawned
	echo "ikev2d $pid" >"$LAB/$host/daemon"
	wait_until 20 "ikev2d control socket on $host" _ikev2d_ready "$host" "$pid"
}

_ikev2d_ready() {
	_alive "$2" || fail "ikev2d on $1 exited during start-up (see $1/ikev2d.log)"
	on "$1" test -S "/run/ikev2d-$1.ctl"
}

ikectl_on() {
	local host=$1
	shift
	on "$host" "$REPO/target/debug/ikectl" --ctl "/run/ikev2d-$host.ctl" "$@"
}

# True while PID runs (a zombie counts as gone: reaped here when it is ours).
_alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	if [[ $stat == Z* ]]; then
		wait "$1" 2>/dev/null || true
		return 1
	fi
}

# Stops HOST's daemon: SIGTERM, then up to 10 s for it to exit; a daemon that
# does not exit is killed and the scenario fails.
stop_daemon() {
	local host=$1 kind pid pids=()
	[[ -s $LAB/$host/daemon ]] || return 0
	read -r kind pid <"$LAB/$host/daemon"
	: >"$LAB/$host/daemon"
	log "stop $kind on $host"
	case $kind in
	strongswan)
		pids=("$(on "$host" cat /run/starter.charon.pid 2>/dev/null)"
			"$(on "$host" cat /run/charon.pid 2>/dev/null)") || true
		on "$host" ipsec stop >>"$ART/$host/starter.log" 2>&1 || true
		;;
	ikev2d)
		pids=("$pid")
		kill -TERM "$pid" 2>/dev/null || true
		;;
	esac
	local deadline=$((SECONDS + 10))
	for pid in "${pids[@]}"; do
		[[ -n $pid ]] || continue
		while _alive "$pid"; do
			if ((SECONDS >= deadline)); then
				kill -KILL "$pid" 2>/dev/null || true
				fail "$kind on $host did not exit within 10 s"
			fi
			sleep 0.1
		done
	done
}

# Kills HOST's daemon with SIGKILL, as a crash would: no Delete goes out and its SAs and
# policies stay in HOST's kernel. strongSwan's starter goes first (it would restart charon);
# the stale pid files and control sockets are removed so that it can be started again.
kill_daemon() {
	local host=$1 kind pid pids=()
	[[ -s $LAB/$host/daemon ]] || fail "$host runs no daemon to kill"
	read -r kind pid <"$LAB/$host/daemon"
	: >"$LAB/$host/daemon"
	log "SIGKILL $kind on $host"
	case $kind in
	strongswan)
		pids=("$(on "$host" cat /run/starter.charon.pid)" "$(on "$host" cat /run/charon.pid)")
		;;
	ikev2d) pids=("$pid") ;;
	esac
	for pid in "${pids[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait_until 10 "$kind ($pid) on $host to die" not _alive "$pid"
	done
	# A stale control socket would make the next start look ready at once.
	case $kind in
	strongswan) on "$host" rm -f /run/starter.charon.pid /run/charon.pid /run/charon.ctl /run/charon.vici ;;
	ikev2d) on "$host" rm -f "/run/ikev2d-$host.ctl" ;;
	esac
}
