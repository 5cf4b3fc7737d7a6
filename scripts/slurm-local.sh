#!/usr/bin/env bash
# A real Slurm on this machine (one node, two CPUs) for tests/slurm.rs: munge,
# slurmctld and slurmd on localhost, as root. Debian 12 (Slurm 22.05).
#
#   scripts/slurm-local.sh install   # apt-get install slurmctld slurmd slurm-client munge (~20 s)
#   scripts/slurm-local.sh start     # configure and start; waits until the node is idle
#   scripts/slurm-local.sh stop      # stop the daemons it started (by their pid files)
#
# An existing /etc/slurm/slurm.conf that this script did not write is backed
# up to slurm.conf.lmtune-backup first, and put back by `stop`.
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 2; }

CONF=/etc/slurm/slurm.conf
MARK="# written by lmtune scripts/slurm-local.sh"

need_root() {
  [ "$(id -u)" -eq 0 ] || die "scripts/slurm-local.sh $1 runs as root (it starts system daemons); use sudo or a root shell"
}

install() {
  need_root install
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
}

start() {
  need_root start
  for bin in /usr/sbin/munged /usr/sbin/slurmctld /usr/sbin/slurmd sbatch sinfo; do
    command -v "$bin" >/dev/null 2>&1 || die "$bin is missing: run scripts/slurm-local.sh install"
  done
  mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge /var/spool/slurmctld /var/spool/slurmd /etc/slurm
  [ -f /etc/munge/munge.key ] || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
  chmod 400 /etc/munge/munge.key
  if [ ! -S /run/munge/munge.socket.2 ] || ! pid_alive /run/munge/munged.pid; then
    su -s /bin/sh munge -c /usr/sbin/munged
  fi
  if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    log "backing up $CONF to $CONF.lmtune-backup"
    cp -a "$CONF" "$CONF.lmtune-backup"
  fi
  local h
  h=$(hostname -s)
  cat > "$CONF" <<CONF
$MARK
ClusterName=local
SlurmctldHost=$h
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmUser=root
NodeName=$h CPUs=2 State=UNKNOWN
PartitionName=debug Nodes=$h Default=YES MaxTime=INFINITE State=UP
CONF
  pid_alive /run/slurmctld.pid || /usr/sbin/slurmctld
  pid_alive /run/slurmd.pid || /usr/sbin/slurmd
  for _ in $(seq 60); do
    if sinfo -h -o '%T' 2>/dev/null | grep -qx 'idle'; then
      log "slurm is up: $(sinfo -h -o '%N %c CPUs %T')"
      return 0
    fi
    sleep 1
  done
  die "the node did not become idle within 60 s (sinfo: $(sinfo -h 2>&1 | head -1)); see /var/log/slurm*"
}

pid_alive() {
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

stop() {
  need_root stop
  for pidfile in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
    if pid_alive "$pidfile"; then
      kill "$(cat "$pidfile")"
    fi
  done
  if [ -f "$CONF.lmtune-backup" ]; then
    mv "$CONF.lmtune-backup" "$CONF"
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) die "usage: scripts/slurm-local.sh install|start|stop" ;;
esac
