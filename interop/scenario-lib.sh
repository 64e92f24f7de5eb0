# shellcheck shell=bash
# Steps shared by scenarios (sourced by a `steps` script after interop/lib.sh, and by
# interop/matrix/cell.sh). What ikev2d reports is always read from `ikectl status --json`
# (with jq), never from ikectl's text.
#
#   ikev2d_jq HOST JQ-ARG...       HOST's `ikectl status --json` through `jq JQ-ARG...`
#   ikev2d_spis HOST               "IN OUT": the ESP SPIs of HOST's first CHILD_SA (empty
#                                  when there is none)
#   ikev2d_ike_spis HOST           "SPIi SPIr", one line per IKE SA
#   ikev2d_child HOST CONDITION    HOST reports a CHILD_SA for which the jq expression
#                                  CONDITION holds (e.g. '.installed'); logs the report if not
#   ping_esp SRC DST               ping DST from SRC, ESP packet counters > 0 on alice and on
#                                  bob, snapshot both as 3-traffic
#   up_ping_status CONN PEER [SRC] ikectl up CONN on alice, ping, both hosts agree on the SAs;
#                                  leaves alice's "IN OUT" ESP SPIs in up_spis
#   nothing_left LABEL             no SA and only the policies of snapshot LABEL on either host

ikev2d_jq() {
	local host=$1 json
	shift
	json=$(ikectl_on "$host" status --json) || return 1
	jq "$@" <<<"$json"
}

ikev2d_spis() {
	ikev2d_jq "$1" -r 'first(.conns[].ike_sas[].children[]) | "\(.spi_in) \(.spi_out)"'
}

ikev2d_ike_spis() {
	ikev2d_jq "$1" -r '.conns[].ike_sas[] | "\(.spi_i) \(.spi_r)"'
}

ikev2d_child() {
	local host=$1 cond=$2 json
	json=$(ikectl_on "$host" status --json) || return 1
	jq -e "any(.conns[].ike_sas[].children[]; $cond)" <<<"$json" >/dev/null && return
	log "no CHILD_SA on $host with $cond; ikectl status --json:"
	jq . <<<"$json" | sed 's/^/    | /'
	return 1
}

ping_esp() {
	local src=$1 dst=$2 h n
	check "ping $src -> $dst" output_has " 0% packet loss" on "$src" ping -c 3 -i 0.2 -W 2 "$dst"
	for h in alice bob; do
		n=$(esp_packets "$h")
		log "ESP packets on $h: $n"
		check "ESP SA packet counters > 0 on $h" test "$n" -gt 0
	done
	snapshot alice 3-traffic
	snapshot bob 3-traffic
}

# ikectl up CONN on alice, ping PEER-ADDR from alice (from SRC-NS when given), check ESP
# counters and that both hosts report the same CHILD_SA; prints both hosts' status and SAs.
# Sets up_spis to alice's "IN OUT" ESP SPIs as checked here (a scenario with short lifetimes
# must not read them again later: the CHILD_SA may have been rekeyed by then).
up_ping_status() {
	local conn=$1 peer=$2 src_ns=${3:-alice} h a_in a_out b_in b_out
	check "ikectl up $conn succeeds" output_has "connection '$conn' established successfully" \
		show "alice: ikectl up $conn" ikectl_on alice up "$conn"
	snapshot alice 2-up
	snapshot bob 2-up
	ping_esp "$src_ns" "$peer"
	for h in alice bob; do
		show "$h: ikectl status" ikectl_on "$h" status
		show "$h: ip -s xfrm state" on "$h" ip -s xfrm state
	done
	read -r a_in a_out <<<"$(ikev2d_spis alice)"
	read -r b_in b_out <<<"$(ikev2d_spis bob)"
	log "SPIs: alice in=$a_in out=$a_out, bob in=$b_in out=$b_out"
	check "alice's status shows a CHILD_SA" test -n "$a_in" -a -n "$a_out"
	check "bob's inbound SPI is alice's outbound and vice versa" \
		test "$a_in" = "$b_out" -a "$a_out" = "$b_in"
	up_spis="$a_in $a_out"
}

nothing_left() {
	local h
	for h in alice bob; do
		check "no XFRM state left on $h" no_xfrm_state "$h"
		check "only the start-up policies left on $h" same_policies "$h" "$1"
	done
}
