# shellcheck shell=bash
# HTTP and capture helpers for lab steps (sourced after interop/lib.sh): Apache on a lab
# host, as the seed lab's §3.3 has it, and packet captures one step long.
#
#   start_httpd HOST DOCROOT [PORT...]  Apache (Debian's apache2, a minimal configuration)
#                              on HOST's port 80 (and each PORT) serving DOCROOT (a path in
#                              HOST's own mount namespace, e.g. under its private /run);
#                              waits until it answers
#   stop_httpd HOST            stop it (SIGTERM, bounded wait)
#   start_capture HOST NAME [FILTER...]  tcpdump on HOST's eth0 into $ART/NAME.pcap
#   stop_capture               end that capture (the file is then complete)
#   pcap_count NAME FILTER...  number of packets in $ART/NAME.pcap matching the
#                              tcpdump FILTER

start_httpd() {
	local host=$1 docroot=$2 conf=$ART/$1/apache2.conf port
	shift 2
	cat >"$conf" <<-EOF
		# Written by interop/http-lib.sh: Apache with only what serving files needs.
		ServerName $host
		ServerRoot /usr/lib/apache2
		DefaultRuntimeDir /run/apache2-lab
		PidFile /run/apache2-lab/apache2.pid
		Listen 80
		LoadModule mpm_event_module modules/mod_mpm_event.so
		LoadModule authz_core_module modules/mod_authz_core.so
		User www-data
		Group www-data
		ErrorLog /var/log/apache2-error.log
		DocumentRoot $docroot
		<Directory $docroot>
			Require all granted
		</Directory>
	EOF
	for port in "$@"; do
		echo "Listen $port" >>"$conf"
	done
	on "$host" mkdir -p /run/apache2-lab "$docroot"
	on "$host" chmod 755 "$docroot"
	log "start Apache on $host (DocumentRoot $docroot)"
	spawn_on "$host" "$ART/$host/apache2.log" apache2 -f "$conf" -DFOREGROUND
	echo "$spawned" >"$LAB/$host/httpd"
	wait_until 20 "Apache on $host" on "$host" curl -s -o /dev/null http://127.0.0.1/
}

stop_httpd() {
	local host=$1 pid deadline
	[[ -s $LAB/$host/httpd ]] || return 0
	pid=$(<"$LAB/$host/httpd")
	: >"$LAB/$host/httpd"
	log "stop Apache on $host"
	kill -TERM "$pid" 2>/dev/null || true
	deadline=$((SECONDS + 10))
	while _alive "$pid"; do
		((SECONDS < deadline)) || fail "Apache on $host did not exit within 10 s"
		sleep 0.1
	done
}

start_capture() {
	local host=$1 name=$2
	shift 2
	: >"$ART/$name.tcpdump.log"
	spawn_on "$host" "$ART/$name.tcpdump.log" tcpdump -Z root -i eth0 -U -n -w "$ART/$name.pcap" "$@"
	_capture_pid=$spawned _capture_file=$ART/$name.pcap
	wait_until 20 "tcpdump $name on $host" grep -q "listening on" "$ART/$name.tcpdump.log"
}

stop_capture() {
	local deadline=$((SECONDS + 5)) size last=-1
	# tcpdump (-U) writes each packet once it has read it, but an interrupt drops what it has
	# not read yet: a slow lab kernel may still be behind the traffic. Wait until the file
	# stops growing between two looks (at most 5 s), then interrupt it.
	while ((SECONDS < deadline)); do
		size=$(stat -c %s "$_capture_file" 2>/dev/null || echo 0)
		((size == last)) && break
		last=$size
		sleep 0.3
	done
	deadline=$((SECONDS + 5))
	kill -INT "$_capture_pid" 2>/dev/null || true
	while _alive "$_capture_pid"; do
		((SECONDS < deadline)) || fail "tcpdump did not exit within 5 s"
		sleep 0.1
	done
}

pcap_count() {
	local name=$1
	shift
	tcpdump -n -r "$ART/$name.pcap" "$@" 2>/dev/null | wc -l
}

# capture_has NAME N FILTER...: the capture NAME holds at least N packets matching FILTER
# (tcpdump may still be behind the traffic in a slow lab: wait for this before stopping it).
capture_has() {
	local name=$1 n=$2
	shift 2
	(($(pcap_count "$name" "$@") >= n))
}
