#!/bin/sh
# Makes /cgi-bin/health (and so the Docker HEALTHCHECK) fail in this container until /cgi-bin/heal.
: > /tmp/testapp-broken
printf 'Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nbroken\n'
