#!/bin/sh
# 200 "ok <variant>" unless the image is the bad variant (/etc/testapp/health says 500) or
# /cgi-bin/break made this container unhealthy (until /cgi-bin/heal).
variant=$(cat /etc/testapp/variant)
status=$(cat /etc/testapp/health)
[ -e /tmp/testapp-broken ] && status=500
if [ "$status" = "200" ]; then
  printf 'Status: 200 OK\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\n\r\nok %s\n' "$variant"
else
  printf 'Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\n\r\nunhealthy %s\n' "$variant"
fi
