# shellcheck shell=bash
# Helpers for the kernel-xfrm-* scenarios: our kernel layer (tests/xfrm_lab.rs, built by
# `cargo build --all-targets` or `cargo test --test xfrm_lab --no-run`) installs a CHILD_SA
# on alice and on bob, with no IKE daemon. Sourced by the scenarios' steps, after lib.sh.
#
#   xfrm_lab_scenario ALG STATE_REGEX PING_HOST PING_DST [VAR=VALUE...]
#     starts the installer on alice and bob (extra VAR=VALUE go to both; XFRM_LAB_*_TS
#     are swapped for bob), swaps their SPIs, checks `ip xfrm state` on alice against
#     STATE_REGEX, pings PING_DST from PING_HOST, checks the counters, removes the
#     CHILD_SAs and checks that nothing is left.

xfrm_lab_bin() {
	local f newest=
	for f in "$REPO"/target/debug/deps/xfrm_lab-*; do
		[[ -x $f && $f != *.d ]] || continue
		[[ -z $newest || $f -nt $newest ]] && newest=$f
	done
	[[ -n $newest ]] || fail "no xfrm_lab test binary: run cargo test --test xfrm_lab --no-run"
	printf '%s\n' "$newest"
}

# xfrm_lab_start HOST LOCAL REMOTE VAR=VALUE...: the installer in HOST's network namespace,
# its control FIFOs open on fds ${cmd_fd[HOST]} (write) and ${reply_fd[HOST]} (read).
declare -A cmd_fd reply_fd lab_pid
xfrm_lab_start() {
	local host=$1 local=$2 remote=$3 bin dir=$ART/$1 fd
	shift 3
	bin=$(xfrm_lab_bin) || exit 1
	mkfifo "$dir/cmd" "$dir/reply" || fail "mkfifo in $dir"
	log "start $(basename "$bin") on $host: $local -> $remote $*"
	env XFRM_LAB_LOCAL="$local" XFRM_LAB_REMOTE="$remote" XFRM_LAB_CMD="$dir/cmd" \
		XFRM_LAB_REPLY="$dir/reply" "$@" \
		ip netns exec "$host" "$bin" lab_child --exact --ignored --nocapture --test-threads=1 \
		>>"$dir/xfrm_lab.log" 2>&1 &
	lab_pid[$host]=$!
	exec {fd}>"$dir/cmd"
	cmd_fd[$host]=$fd
	exec {fd}<"$dir/reply"
	reply_fd[$host]=$fd
}

# xfrm_lab_read HOST WORD: the rest of the next line from HOST, which must start with WORD.
xfrm_lab_read() {
	local line
	read -r -t "$STEP_TIMEOUT" line <&"${reply_fd[$1]}" ||
		fail "no answer from the installer on $1 (see $1/xfrm_lab.log)"
	log "$1: $line"
	[[ $line == "$2"* ]] || fail "$1 said '$line', expected $2"
	reply=${line#"$2"}
	reply=${reply# }
}

xfrm_lab_say() {
	printf '%s\n' "$2" >&"${cmd_fd[$1]}"
}

xfrm_lab_scenario() {
	local alg=$1 state_re=$2 ping_host=$3 ping_dst=$4 h spi_alice spi_bob n rc
	shift 4
	local common=(XFRM_LAB_ALG="$alg" "$@") bob_env=() v
	for v in "${common[@]}"; do
		case $v in
		XFRM_LAB_LOCAL_TS=*) bob_env+=("XFRM_LAB_REMOTE_TS=${v#*=}") ;;
		XFRM_LAB_REMOTE_TS=*) bob_env+=("XFRM_LAB_LOCAL_TS=${v#*=}") ;;
		*) bob_env+=("$v") ;;
		esac
	done
	for h in alice bob; do snapshot "$h" 1-before; done
	xfrm_lab_start alice 10.1.0.1 10.1.0.2 "${common[@]}"
	xfrm_lab_start bob 10.1.0.2 10.1.0.1 "${bob_env[@]}"
	xfrm_lab_read alice SPI
	spi_alice=$reply
	xfrm_lab_read bob SPI
	spi_bob=$reply
	xfrm_lab_say alice "PEER $spi_bob"
	xfrm_lab_say bob "PEER $spi_alice"
	for h in alice bob; do xfrm_lab_read "$h" INSTALLED; done
	for h in alice bob; do snapshot "$h" 2-installed; done

	check "ip xfrm state on alice matches: $state_re" \
		output_has "$state_re" on alice ip xfrm state
	check "SPIs from ALLOCSPI are in use" \
		output_has "spi 0x$spi_alice .*" on alice ip xfrm state
	check "ping $ping_host -> $ping_dst" \
		output_has " 0% packet loss" on "$ping_host" ping -c 3 -i 0.2 -W 2 "$ping_dst"
	for h in alice bob; do
		n=$(esp_packets "$h")
		log "ESP packets on $h: $n"
		check "ESP SA packet counters > 0 on $h" test "$n" -gt 0
	done
	for h in alice bob; do snapshot "$h" 3-traffic; done
	run_logged on alice ip -s xfrm state >/dev/null

	for h in alice bob; do
		xfrm_lab_say "$h" STOP
		xfrm_lab_read "$h" COUNTERS
		xfrm_lab_read "$h" REMOVED
		rc=0
		wait "${lab_pid[$h]}" || rc=$?
		check "installer on $h passed (exit status $rc)" test "$rc" -eq 0
		rm -f "$ART/$h/cmd" "$ART/$h/reply"
	done
	for h in alice bob; do
		snapshot "$h" 4-removed
		check "no XFRM state left on $h" no_xfrm_state "$h"
		check "no policy left on $h" same_policies "$h" 1-before
	done
}
