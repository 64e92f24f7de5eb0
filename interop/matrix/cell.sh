# shellcheck shell=bash
# Runs interop matrix cells (interop/matrix/strongswan.cells, generated into
# interop/scenarios/matrix-*/) inside one lab boot; sourced by their `steps`.
#
#   matrix_cells CELL...   run each cell in turn with its own artifacts folder
#                          $ART/<cell>/ (result, link.pcap, alice/, bob/, keys/) and a
#                          clean lab in between; the scenario fails if any cell fails.
#
# alice runs ikev2d, bob strongSwan. A file `matrix-peer` next to the scenario's
# artifacts folder (written by interop/run from MATRIX_PEER) holding "strongswan"
# runs strongSwan on alice too, with the same configuration: a stand-in that checks
# the cells' strongSwan side.

CELL_TIMEOUT=${CELL_TIMEOUT:-75}

matrix_cells() {
	local peer=ikev2d cell cart rc n=0 failed=()
	if [[ -s $ART/../matrix-peer ]]; then peer=$(<"$ART/../matrix-peer"); fi
	for cell in "$@"; do
		cart=$ART/$cell
		mkdir -p "$cart/alice" "$cart/bob" "$cart/keys"
		log "cell $cell: start (alice: $peer, bob: strongswan)"
		rc=0
		ROOT_ART=$ART ART=$cart MATRIX_PEER=$peer CELL_DIR=$REPO/interop/scenarios/matrix-$cell \
			timeout -k 5 "$CELL_TIMEOUT" bash -c '
				set -eEuo pipefail
				source "$REPO/interop/lib.sh"
				source "$REPO/interop/matrix/cell.sh"
				trap '\''fail "cell line $LINENO failed: $BASH_COMMAND"'\'' ERR
				cell_run' || rc=$?
		_cell_cleanup "$cart"
		if [[ -s $cart/failure ]]; then
			printf 'FAIL: %s\n' "$(head -n 1 "$cart/failure")" >"$cart/result"
		elif ((rc != 0)); then
			printf 'FAIL: cell exited with status %s%s\n' "$rc" \
				"$( ((rc != 124)) || echo ", timed out after ${CELL_TIMEOUT}s")" >"$cart/result"
		else
			echo PASS >"$cart/result"
		fi
		log "cell $cell: $(<"$cart/result")"
		[[ $(<"$cart/result") == PASS ]] || failed+=("$cell")
		n=$((n + 1))
	done
	((${#failed[@]} == 0)) || fail "${#failed[@]}/$n cells failed: ${failed[*]}"
}

# Stops what a cell started (even after a failure or a time-out) and leaves the
# hosts without SAs or policies for the next cell; keeps the cell's charon logs.
_cell_cleanup() {
	local cart=$1 h pid stops=()
	for h in alice bob; do
		(ART=$cart stop_daemon "$h") &
		stops+=($!)
	done
	wait "${stops[@]}" || true
	for h in alice bob; do : >"$LAB/$h/daemon"; done
	if [[ -s $cart/tcpdump.pid ]]; then
		pid=$(<"$cart/tcpdump.pid")
		kill -INT "$pid" 2>/dev/null || true
		for _ in {1..50}; do _alive "$pid" || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	for h in alice bob; do
		if [[ -f $ART/$h/charon.log ]]; then mv "$ART/$h/charon.log" "$cart/$h/charon.log"; fi
		on "$h" ip xfrm state flush || true
		on "$h" ip xfrm policy flush || true
	done
}

# --- inside one cell (a child bash; ART is the cell's folder, ROOT_ART the scenario's) ---

cell_run() {
	# shellcheck source=/dev/null
	source "$CELL_DIR/cell"
	log "cell $CELL: $CELL_ROLE $CELL_MODE ike=$CELL_IKE esp=$CELL_ESP ids=$CELL_IDS expect=$CELL_EXPECT down=$CELL_DOWN"
	spawn_on alice "$ART/tcpdump.log" tcpdump -Z root -i eth0 -U -n -w "$ART/link.pcap"
	echo "$spawned" >"$ART/tcpdump.pid"
	wait_until 20 "tcpdump on alice" grep -q "listening on" "$ART/tcpdump.log"

	# bob's strongSwan starts while alice's daemon does.
	start_strongswan bob "$CELL_DIR/bob" &
	local bob_start=$!
	if [[ $MATRIX_PEER == ikev2d ]]; then
		start_ikev2d alice "$CELL_DIR/alice" --wireshark-keys "$ART/alice/wireshark"
	else
		start_strongswan alice "$CELL_DIR/alice"
	fi
	wait "$bob_start" || fail "strongSwan did not start on bob"
	snapshot alice 1-started
	snapshot bob 1-started
	"cell_$CELL_EXPECT"
}

# Host of the initiator / of the responder.
_initiator() { if [[ $CELL_ROLE == ik2ss ]]; then echo alice; else echo bob; fi; }
_responder() { if [[ $CELL_ROLE == ik2ss ]]; then echo bob; else echo alice; fi; }

# HOST runs ikev2d (else strongSwan).
_is_ikev2d() { [[ $1 == alice && $MATRIX_PEER == ikev2d ]]; }

# up / down on HOST with its daemon's tool; prints the tool's output.
conn_up() {
	if _is_ikev2d "$1"; then run_logged ikectl_on "$1" up "$CELL_CONN"; else run_logged on "$1" ipsec up "$CELL_CONN"; fi
}
conn_down() {
	if _is_ikev2d "$1"; then run_logged ikectl_on "$1" down "$CELL_CONN"; else run_logged on "$1" ipsec down "$CELL_CONN"; fi
}

# HOST's SAs as its daemon reports them, normalised (interop/matrix/status):
# "ike SPIi SPIr PROPOSAL" and "child SPI(alice->bob) SPI(bob->alice) ALGORITHMS".
norm_status() {
	local host=$1
	if _is_ikev2d "$host"; then
		ikectl_on "$host" status | "$REPO/interop/matrix/status" "$host"
	else
		on "$host" ipsec statusall | "$REPO/interop/matrix/status" "$host"
	fi
}

# The log where HOST's daemon reports failures.
daemon_log() {
	if _is_ikev2d "$1"; then echo "$ART/$1/ikev2d.log"; else echo "$ROOT_ART/$1/charon.log"; fi
}

# No SA on either host and only the policies of right after start-up.
nothing_installed() {
	local h
	for h in alice bob; do
		check "no XFRM state on $h" no_xfrm_state "$h"
		check "only the start-up policies on $h" same_policies "$h" 1-started
	done
}

# The daemon on HOST reports no SA at all.
no_sa_reported() {
	local s
	s=$(norm_status "$1") || return 1
	[[ -z $s ]] || {
		printf '%s\n' "$s" | sed 's/^/    | /'
		return 1
	}
}

cell_pass() {
	local init resp out src dst h n a b down other
	init=$(_initiator) resp=$(_responder)
	out=$(conn_up "$init")
	check "$init: up $CELL_CONN establishes the SAs" grep -q "connection '$CELL_CONN' established successfully" <<<"$out"
	snapshot alice 2-up
	snapshot bob 2-up

	# Traffic from the initiator's side: its host, or its LAN host in tunnel mode.
	if [[ $CELL_MODE == transport ]]; then
		if [[ $init == alice ]]; then src=alice dst=10.1.0.2; else src=bob dst=10.1.0.1; fi
	else
		if [[ $init == alice ]]; then src=alice-lan dst=10.1.2.2; else src=bob-lan dst=10.1.1.2; fi
	fi
	check "ping $src -> $dst" output_has " 0% packet loss" on "$src" ping -c 3 -i 0.2 -W 2 "$dst"
	for h in alice bob; do
		n=$(esp_packets "$h")
		log "ESP packets on $h: $n"
		check "ESP SA packet counters > 0 on $h" test "$n" -gt 0
	done
	snapshot alice 3-traffic
	snapshot bob 3-traffic

	a=$(norm_status alice)
	b=$(norm_status bob)
	printf '%s\n' "$a" >"$ART/alice/status.txt"
	printf '%s\n' "$b" >"$ART/bob/status.txt"
	log "alice reports:"$'\n'"$(sed 's/^/    | /' <<<"$a")"
	log "bob reports:"$'\n'"$(sed 's/^/    | /' <<<"$b")"
	check "alice reports an IKE SA and a CHILD_SA" grep -q "^child " <<<"$a"
	check "alice's and bob's reports agree on SPIs and algorithms" test "$a" = "$b"

	# The tshark checks of the encrypted payloads run on the host after the lab
	# (interop/matrix/postcheck, much faster there); keep what they need.
	if [[ $MATRIX_PEER == ikev2d ]]; then
		cp "$ART/alice/wireshark/ikev2_decryption_table" "$ART/keys/alice-ikev2_decryption_table"
		cp "$ART/alice/wireshark/esp_sa" "$ART/keys/alice-esp_sa"
	fi
	touch "$ART/keys/pending"

	if [[ $CELL_DOWN == init ]]; then down=$init; else down=$resp; fi
	if [[ $down == alice ]]; then other=bob; else other=alice; fi
	conn_down "$down" >/dev/null
	wait_until 20 "no XFRM state on $other after the down on $down" no_xfrm_state "$other"
	wait_until 20 "no XFRM state on $down" no_xfrm_state "$down"
	snapshot alice 4-down
	snapshot bob 4-down
	for h in alice bob; do
		check "$h's daemon reports no SA after the down on $down" no_sa_reported "$h"
	done
	nothing_installed
}

cell_authfail() {
	local init resp out
	init=$(_initiator) resp=$(_responder)
	out=$(conn_up "$init")
	check "$init: up $CELL_CONN fails" not grep -q "established successfully" <<<"$out"
	check "$init reports AUTHENTICATION_FAILED" grep -q "AUTHENTICATION_FAILED" <<<"$out"
	check "$resp logged the failed authentication" grep -Eq "$(_auth_failed_re "$resp")" "$(daemon_log "$resp")"
	snapshot alice 2-up-failed
	snapshot bob 2-up-failed
	nothing_installed
}

cell_noproposal() {
	local init resp out
	init=$(_initiator) resp=$(_responder)
	out=$(conn_up "$init")
	check "$init: up $CELL_CONN fails" not grep -q "established successfully" <<<"$out"
	check "$init reports NO_PROPOSAL_CHOSEN" grep -q "NO_PROPOSAL_CHOSEN" <<<"$out"
	check "$resp logged that no proposal matched" grep -Eq "$(_no_proposal_re "$resp")" "$(daemon_log "$resp")"
	snapshot alice 2-up-failed
	snapshot bob 2-up-failed
	nothing_installed
}

# What a responder's log says when the initiator's AUTH does not verify / no proposal fits.
_auth_failed_re() {
	if _is_ikev2d "$1"; then echo "AUTHENTICATION_FAILED"; else echo "MAC mismatched|authentication of .* failed"; fi
}
_no_proposal_re() {
	if _is_ikev2d "$1"; then echo "NO_PROPOSAL_CHOSEN"; else echo "no IKE config found|NO_PROP|no acceptable proposal"; fi
}

# run_logged, keeping CMD's exit status.
run_logged_ok() {
	local out rc=0
	out=$("$@" 2>&1) || rc=$?
	printf '%s\n' "$out" | sed 's/^/    | /' >&2
	return "$rc"
}
