#!/bin/sh
# Baton test app: busybox httpd on $APP_ADDR:$APP_PORT (default 127.0.0.1:8080) serving /www.
# PID 1 of its container. On SIGTERM/SIGINT it stops listening, lets in-flight requests (httpd
# forks one process per connection) finish for up to $APP_GRACE_SECONDS (default 5), then exits 0:
# a graceful stop, so that `docker stop` needs no SIGKILL and drains are observable.
addr="${APP_ADDR:-127.0.0.1}"
port="${APP_PORT:-8080}"
grace="${APP_GRACE_SECONDS:-5}"

/bin/httpd -f -p "$addr:$port" -h /www &
httpd_pid=$!

# Sets $busy to the number of live processes in this container besides this shell (no subshell,
# so the count does not include itself; zombies do not count).
count_busy() {
  busy=0
  for p in /proc/[0-9]*; do
    [ "$p" = "/proc/$$" ] && continue
    stat=''
    read -r stat 2>/dev/null < "$p/stat" || continue
    case "$stat" in *") Z "*) continue ;; esac
    busy=$((busy + 1))
  done
}

stop() {
  trap '' TERM INT
  kill -TERM "$httpd_pid" 2>/dev/null
  wait "$httpd_pid" 2>/dev/null
  ticks=$((grace * 10))
  while [ "$ticks" -gt 0 ]; do
    count_busy
    [ "$busy" -eq 0 ] && break
    sleep 0.1
    ticks=$((ticks - 1))
  done
  exit 0
}
trap stop TERM INT

wait "$httpd_pid"
exit $?
