#!/usr/bin/env bash
# Writes a loopback-only Janus configuration (videoroom + WebSocket transport only) into $1.
#   bench/janus-config.sh DIR [WS_PORT] [EVENT_LOOPS]
# Start it with: janus -F DIR   (the bench pins it with taskset -c 0)
set -euo pipefail
dir=${1:?config dir}
port=${2:-8188}
loops=${3:-1}
libdir=$(dirname "$(find /usr/lib -name libjanus_videoroom.so -print -quit 2>/dev/null)")
libdir=${libdir%/plugins}
[ -d "$libdir/plugins" ] || { echo "janus plugins not found (apt-get install -y janus)" >&2; exit 1; }
mkdir -p "$dir"
cat > "$dir/janus.jcfg" <<CFG
general: {
	configs_folder = "$dir"
	plugins_folder = "$libdir/plugins"
	transports_folder = "$libdir/transports"
	events_folder = "$libdir/events"
	loggers_folder = "$libdir/loggers"
	debug_level = 3
	debug_timestamps = true
	session_timeout = 0
	event_loops = $loops
	protected_folders = ["/bin", "/boot", "/dev", "/etc", "/initrd", "/lib", "/lib32", "/lib64", "/proc", "/sbin", "/sys", "/usr", "/var"]
}
certificates: {
}
media: {
	rtp_port_range = "20000-60000"
}
nat: {
	nice_debug = false
	ignore_mdns = true
	ice_enforce_list = "antv0"
}
plugins: {
	disable = "libjanus_audiobridge.so,libjanus_duktape.so,libjanus_echotest.so,libjanus_lua.so,libjanus_nosip.so,libjanus_recordplay.so,libjanus_sip.so,libjanus_streaming.so,libjanus_textroom.so,libjanus_videocall.so,libjanus_voicemail.so"
}
transports: {
	disable = "libjanus_http.so,libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so"
}
loggers: {
	disable = "libjanus_jsonlog.so"
}
events: {
	broadcast = false
	disable = "libjanus_gelfevh.so,libjanus_mqttevh.so,libjanus_nanomsgevh.so,libjanus_rabbitmqevh.so,libjanus_sampleevh.so,libjanus_wsevh.so"
}
CFG
cat > "$dir/janus.transport.websockets.jcfg" <<CFG
general: {
	json = "compact"
	ws = true
	ws_port = $port
	ws_ip = "127.0.0.1"
	wss = false
}
admin: {
	admin_ws = false
	admin_wss = false
}
CFG
# One room: up to 1000 publishers (the idle-publisher memory run), no bitrate cap, no
# periodic FIR, VP8 + Opus like the Antenna runs.
cat > "$dir/janus.plugin.videoroom.jcfg" <<CFG
general: {
	events = false
}
room-1234: {
	description = "bench"
	publishers = 1000
	bitrate = 0
	fir_freq = 0
	audiocodec = "opus"
	videocodec = "vp8"
	record = false
}
CFG
