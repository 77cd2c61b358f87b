#!/bin/sh
# Bad variant only: busybox httpd runs /cgi-bin/index.cgi for a directory URL without index.html.
# /www/health is an empty directory in that image, so GET /health answers 302 -> /health/ -> 500.
printf 'Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\n\r\nunhealthy %s\n' "$(cat /etc/testapp/variant)"
