#!/usr/bin/env bash
# Removes what scripts/install.sh installed.
#
#   scripts/uninstall.sh [--root DIR] [--purge]
#
# Stops and disables the units (with --root /), removes /opt/baton, the units, the sysusers.d
# file and the /usr/local/bin/baton symlink. Configs (/etc/baton) and state (/var/lib/baton,
# the coordinator's database and the agent's journal) stay unless --purge, which also removes
# the baton user. Running it again changes nothing.
set -euo pipefail

die() {
  echo "uninstall: $*" >&2
  exit 1
}

root=/
purge=no
while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || die "--root needs a directory"; root=$2; shift 2 ;;
    --root=*) root=${1#--root=}; shift ;;
    --purge) purge=yes; shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "uninstall: unknown argument: $1" >&2; exit 64 ;;
  esac
done
[ -d "$root" ] || die "no such directory: $root"
root=$(cd "$root" && pwd)
at() { if [ "$root" = / ]; then printf '%s' "$1"; else printf '%s%s' "$root" "$1"; fi; }
if [ "$root" = / ] && [ "$(id -u)" -ne 0 ]; then die "uninstalling from / needs root (or use --root DIR)"; fi

note() { echo "uninstall: $*"; }
remove() {
  local path
  path=$(at "$1")
  if [ -e "$path" ] || [ -L "$path" ]; then
    rm -rf "$path"
    note "removed $1"
  fi
}

systemd_running=no
[ "$root" = / ] && [ -d /run/systemd/system ] && systemd_running=yes
for unit in baton-agent baton-coordinator; do
  if [ "$systemd_running" = yes ] && [ -f "/etc/systemd/system/$unit.service" ]; then
    systemctl disable --now "$unit.service" >/dev/null 2>&1 || true
  fi
  remove "/etc/systemd/system/$unit.service"
done
# The agent's readiness socket: stopped after the agent, or a connection would start it again.
if [ "$systemd_running" = yes ] && [ -f /etc/systemd/system/baton-agent.socket ]; then
  systemctl disable --now baton-agent.socket >/dev/null 2>&1 || true
fi
remove /etc/systemd/system/baton-agent.socket

link=$(at /usr/local/bin/baton)
if [ -L "$link" ] && [ "$(readlink "$link")" = /opt/baton/bin/baton ]; then remove /usr/local/bin/baton; fi
remove /opt/baton
remove /usr/lib/sysusers.d/baton.conf

if [ "$purge" = yes ]; then
  remove /etc/baton
  remove /var/lib/baton
  if [ "$root" = / ] && getent passwd baton >/dev/null; then
    userdel baton && note "removed the user baton"
  fi
else
  for kept in /etc/baton /var/lib/baton; do
    [ ! -e "$(at "$kept")" ] || note "kept $kept (--purge removes it)"
  done
fi

[ "$systemd_running" = no ] || systemctl daemon-reload
note "done"
