#!/usr/bin/env bash
# Installs Debian's Docker engine and Compose, and starts dockerd when none answers.
# Idempotent: a second run costs a fraction of a second. Used by setup.sh, the tests and the demo.
#
# What this machine needs (measured, GUIDE §5): no registry is reachable, so images are built
# offline (scripts/images.sh); dockerd must not touch the host's iptables and must not create the
# 172.17 default bridge; every network it makes comes from 10.88.0.0/16.
set -euo pipefail

SOCK=/var/run/docker.sock
LOG=${CHAOSLAB_DOCKERD_LOG:-/var/log/chaoslab-dockerd.log}

pkgs=()
for p in docker.io docker-compose busybox-static; do
  dpkg -s "$p" >/dev/null 2>&1 || pkgs+=("$p")
done
if [ ${#pkgs[@]} -gt 0 ]; then
  echo "docker.sh: installing ${pkgs[*]}"
  # Installing docker.io tries to start the daemon with its default bridge; a policy-rc.d that
  # exits 101 tells invoke-rc.d not to start anything during the install.
  had_policy=0
  [ -e /usr/sbin/policy-rc.d ] && had_policy=1
  if [ $had_policy -eq 0 ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  [ $had_policy -eq 0 ] && rm -f /usr/sbin/policy-rc.d
fi

answers() { curl -sf --unix-socket "$SOCK" http://localhost/_ping >/dev/null 2>&1; }

if ! answers; then
  echo "docker.sh: starting dockerd (log: $LOG)"
  # setsid: the daemon outlives the shell (and the test session) that started it.
  setsid /usr/sbin/dockerd --storage-driver=overlay2 --iptables=false --ip-masq=false \
    --bridge=none --oom-score-adjust=0 --default-address-pool base=10.88.0.0/16,size=24 \
    >"$LOG" 2>&1 < /dev/null &
  for _ in $(seq 1 150); do
    answers && break
    sleep 0.2
  done
  if ! answers; then
    echo "docker.sh: dockerd did not answer on $SOCK within 30 s; last lines of $LOG:" >&2
    tail -n 20 "$LOG" >&2 || true
    exit 1
  fi
fi
