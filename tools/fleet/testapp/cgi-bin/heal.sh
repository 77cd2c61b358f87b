#!/bin/sh
rm -f /tmp/testapp-broken
printf 'Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nhealed\n'
