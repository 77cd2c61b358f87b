#!/bin/sh
# One line: variant, $APP_NODE (set it per container to tell nodes apart behind a load balancer), host name.
printf 'Status: 200 OK\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\n\r\n%s %s %s\n' \
  "$(cat /etc/testapp/variant)" "${APP_NODE:--}" "$(hostname)"
