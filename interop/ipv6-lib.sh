# shellcheck shell=bash
# IPv6 in the lab (sourced by a scenario's steps after interop/lib.sh): the runner builds
# the lab IPv4-only; lab_ipv6_up adds IPv6 beside it, before any daemon starts:
#   alice 2001:db8:1::1 and bob 2001:db8:1::2 on the link (eth0),
#   alice-lan 2001:db8:11::2 behind alice (2001:db8:11::1),
#   bob-lan 2001:db8:12::2 behind bob (2001:db8:12::1), routed, forwarding on.
# Addresses are added without duplicate address detection: usable at once.

lab_ipv6_up() {
	local h
	for h in alice bob alice-lan bob-lan; do
		on "$h" sysctl -q -w net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0 \
			net.ipv6.conf.eth0.disable_ipv6=0 net.ipv6.conf.lo.disable_ipv6=0 \
			net.ipv6.conf.all.forwarding="$([[ $h == *-lan ]] && echo 0 || echo 1)" \
			net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.eth0.accept_ra=0
	done
	on alice sysctl -q -w net.ipv6.conf.eth1.disable_ipv6=0
	on bob sysctl -q -w net.ipv6.conf.eth1.disable_ipv6=0
	on alice ip -batch - <<-EOF
		addr add 2001:db8:1::1/64 dev eth0 nodad
		addr add 2001:db8:11::1/64 dev eth1 nodad
		route add 2001:db8:12::/64 via 2001:db8:1::2
	EOF
	on bob ip -batch - <<-EOF
		addr add 2001:db8:1::2/64 dev eth0 nodad
		addr add 2001:db8:12::1/64 dev eth1 nodad
		route add 2001:db8:11::/64 via 2001:db8:1::1
	EOF
	on alice-lan ip -batch - <<-EOF
		addr add 2001:db8:11::2/64 dev eth0 nodad
		route add default via 2001:db8:11::1
	EOF
	on bob-lan ip -batch - <<-EOF
		addr add 2001:db8:12::2/64 dev eth0 nodad
		route add default via 2001:db8:12::1
	EOF
	check "IPv6 alice -> bob in clear" output_has " 0% packet loss" on alice ping -c 1 -W 2 2001:db8:1::2
	check "IPv6 alice-lan -> bob-lan in clear" output_has " 0% packet loss" on alice-lan ping -c 1 -W 2 2001:db8:12::2
}
