#!/bin/sh
# Sleeps ?<seconds> (default 1, fractions allowed), then answers 200 "slow <variant>".
case "$QUERY_STRING" in
  '' | *[!0-9.]* | *.*.*) seconds=1 ;;
  *) seconds="$QUERY_STRING" ;;
esac
sleep "$seconds"
printf 'Status: 200 OK\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\n\r\nslow %s\n' "$(cat /etc/testapp/variant)"
