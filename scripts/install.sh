#!/usr/bin/env bash
# Installs Baton as systemd services from this (built) checkout.
#
#   scripts/install.sh [--root DIR] [--agent | --coordinator | --both]
#
#   <root>/opt/baton                       the package: dist, package.json, production node_modules,
#                                          bin/baton (a wrapper that runs it with this machine's node)
#   <root>/usr/local/bin/baton             a symlink to it, for the CLI (unless something else is there)
#   <root>/etc/systemd/system/baton-*.service   the units, and baton-agent.socket (replaced when they
#                                          change: customise with drop-ins, `systemctl edit baton-agent`)
#   <root>/etc/baton/*.yaml, *.env         example configs, only where no file exists yet:
#                                          an existing config is never overwritten
#   <root>/usr/lib/sysusers.d/baton.conf   the `baton` system user; with --root / the user is
#                                          created now (systemd-sysusers, or useradd)
#
# --root DIR installs into an image or a test tree: no user is created and systemd is not
# reloaded. Idempotent: a second run with the same checkout changes nothing. Nothing is enabled
# or started; the script prints the commands for that. Build first: npm ci && npm run build.
set -euo pipefail

usage() {
  sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
}

die() {
  echo "install: $*" >&2
  exit 1
}

root=/
role=both
while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || die "--root needs a directory"; root=$2; shift 2 ;;
    --root=*) root=${1#--root=}; shift ;;
    --agent) role=agent; shift ;;
    --coordinator) role=coordinator; shift ;;
    --both) role=both; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install: unknown argument: $1" >&2; usage >&2; exit 64 ;;
  esac
done

source_dir=$(cd "$(dirname "$0")/.." && pwd)
[ -n "$root" ] || die "--root is empty"
mkdir -p "$root"
root=$(cd "$root" && pwd)
at() { if [ "$root" = / ]; then printf '%s' "$1"; else printf '%s%s' "$root" "$1"; fi; }

if [ "$root" = / ] && [ "$(id -u)" -ne 0 ]; then
  die "installing into / needs root (or use --root DIR)"
fi
[ -f "$source_dir/dist/cli/baton.js" ] || die "$source_dir/dist is not built: run 'npm ci && npm run build' first"
[ -d "$source_dir/node_modules" ] || die "$source_dir/node_modules is missing: run 'npm ci' first"
node_bin=$(command -v node) || die "node is not on PATH (Baton needs Node.js 20 or newer)"
node_bin=$(readlink -f "$node_bin")
case "$node_bin" in
  /home/*|/root/*|/run/user/*)
    echo "install: warning: node is $node_bin; the units use ProtectHome=yes and cannot run it from there. Install Node.js system-wide." >&2 ;;
esac

changes=0
note() { echo "install: $*"; }

# Copies src to dst with mode, atomically, only when content or mode differ.
put_file() {
  local src=$1 dst=$2 mode=$3
  if [ -f "$dst" ] && cmp -s "$src" "$dst" && [ "$(stat -c %a "$dst")" = "${mode#0}" ]; then
    return 0
  fi
  mkdir -p "$(dirname "$dst")"
  install -m "$mode" "$src" "$dst.baton-new"
  mv -f "$dst.baton-new" "$dst"
  note "wrote ${dst#"${root%/}"}"
  changes=$((changes + 1))
}

# Installs an example config only where there is no file yet.
put_config() {
  local src=$1 dst=$2 mode=$3
  if [ -e "$dst" ] || [ -L "$dst" ]; then
    note "kept ${dst#"${root%/}"} (existing configs are never overwritten)"
    return 0
  fi
  put_file "$src" "$dst" "$mode"
  if [ "$root" = / ] && [ "${mode#0}" = 640 ] && getent group baton >/dev/null; then chgrp baton "$dst"; fi
}

tree_hash() {
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - -C "$1" . | sha256sum | cut -d' ' -f1
}

# ---- The system user (first, so configs can be given its group)
sysusers_file=$(at /usr/lib/sysusers.d/baton.conf)
put_file "$source_dir/systemd/baton.sysusers.conf" "$sysusers_file" 0644
if [ "$root" = / ]; then
  if ! getent passwd baton >/dev/null; then
    if command -v systemd-sysusers >/dev/null && [ -d /run/systemd/system ]; then
      systemd-sysusers /usr/lib/sysusers.d/baton.conf
    else
      useradd --system --user-group --home-dir /var/lib/baton --no-create-home --shell /usr/sbin/nologin \
        --comment "Baton rollout agent and coordinator" baton
    fi
    note "created the system user baton"
    changes=$((changes + 1))
  fi
else
  note "not creating the baton user under --root $root: systemd-sysusers creates it from usr/lib/sysusers.d/baton.conf at boot"
fi

# ---- The package, staged outside the root and swapped in only when it differs
stage=$(mktemp -d "${TMPDIR:-/tmp}/baton-install.XXXXXX")
trap 'rm -rf "$stage"' EXIT
cp -a "$source_dir/dist" "$source_dir/package.json" "$source_dir/package-lock.json" "$source_dir/node_modules" "$stage/"
[ -f "$source_dir/README.md" ] && cp -a "$source_dir/README.md" "$stage/"
mkdir -p "$stage/systemd"
cp -a "$source_dir"/systemd/* "$stage/systemd/"
(
  cd "$stage"
  npm prune --omit=dev --offline --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
) || die "npm prune --omit=dev failed in the staged copy"
mkdir -p "$stage/bin"
cat > "$stage/bin/baton" <<WRAPPER
#!/bin/sh
# Baton (installed by scripts/install.sh): runs the package next to this script with Node.js.
here=\$(dirname "\$(readlink -f "\$0")")
exec "\${BATON_NODE:-$node_bin}" "\$here/../dist/cli/baton.js" "\$@"
WRAPPER
chmod -R u=rwX,go=rX "$stage"
chmod 0755 "$stage/bin/baton"
[ "$(id -u)" -ne 0 ] || chown -R 0:0 "$stage"

target=$(at /opt/baton)
if [ -d "$target" ] && [ "$(tree_hash "$stage")" = "$(tree_hash "$target")" ]; then
  note "unchanged /opt/baton"
else
  mkdir -p "$(dirname "$target")"
  rm -rf "$target.baton-new" "$target.baton-old"
  cp -a "$stage" "$target.baton-new"
  [ ! -e "$target" ] || mv "$target" "$target.baton-old"
  mv "$target.baton-new" "$target"
  rm -rf "$target.baton-old"
  note "installed /opt/baton ($(du -sh "$target" | cut -f1))"
  changes=$((changes + 1))
fi

link=$(at /usr/local/bin/baton)
if [ -L "$link" ] && [ "$(readlink "$link")" = /opt/baton/bin/baton ]; then
  :
elif [ -e "$link" ] || [ -L "$link" ]; then
  note "kept ${link#"${root%/}"}: it is not Baton's symlink"
else
  mkdir -p "$(dirname "$link")"
  ln -s /opt/baton/bin/baton "$link"
  note "linked /usr/local/bin/baton"
  changes=$((changes + 1))
fi

# ---- Units and configs
etc=$(at /etc/baton)
if [ ! -d "$etc" ]; then
  mkdir -p "$etc"
  chmod 0750 "$etc"
  changes=$((changes + 1))
fi
if [ "$root" = / ] && getent group baton >/dev/null && [ "$(stat -c %G "$etc")" != baton ]; then
  chgrp baton "$etc"
fi
units=()
for part in agent coordinator; do
  [ "$role" = both ] || [ "$role" = "$part" ] || continue
  units+=("baton-$part")
  put_file "$source_dir/systemd/baton-$part.service" "$(at "/etc/systemd/system/baton-$part.service")" 0644
  # The agent's readiness socket (socket activation).
  [ "$part" != agent ] || put_file "$source_dir/systemd/baton-agent.socket" "$(at /etc/systemd/system/baton-agent.socket)" 0644
  put_config "$source_dir/systemd/$part.example.yaml" "$etc/$part.yaml" 0640
  put_config "$source_dir/systemd/$part.env.example" "$etc/$part.env" 0600
done

if [ "$root" = / ] && [ "$changes" -gt 0 ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi

if [ "$changes" -eq 0 ]; then
  note "nothing changed"
else
  note "done: $changes change(s) under $root"
fi
if [ "$root" = / ]; then
  for unit in "${units[@]}"; do
    part=${unit#baton-}
    if [ "$part" = agent ]; then
      echo "next: edit /etc/baton/agent.yaml and /etc/baton/agent.env, then: systemctl enable --now baton-agent.socket baton-agent.service"
    else
      echo "next: edit /etc/baton/$part.yaml and /etc/baton/$part.env, then: systemctl enable --now $unit"
    fi
  done
fi
