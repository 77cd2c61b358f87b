#!/bin/sh
# The image's Docker HEALTHCHECK: GET /cgi-bin/health must answer 2xx (busybox wget fails otherwise).
# No `wget -T`: Debian's static busybox 1.35 wget segfaults with it; the HEALTHCHECK's own
# --timeout bounds the check.
addr="${APP_ADDR:-127.0.0.1}"
[ "$addr" = "0.0.0.0" ] && addr=127.0.0.1
exec /bin/wget -q -O /dev/null "http://$addr:${APP_PORT:-8080}/cgi-bin/health"
