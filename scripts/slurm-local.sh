#!/usr/bin/env bash
# A one-node Slurm cluster on localhost, without systemd, for hcs's Slurm tests and for trying
# `hcs run --executor slurm` on one machine.
#
#   bash scripts/slurm-local.sh start   # install (Debian: slurmctld slurmd slurm-client munge) if
#                                       # missing, write a private config, start munged, slurmctld,
#                                       # slurmd, wait until the node is idle
#   bash scripts/slurm-local.sh env     # print `export SLURM_CONF=...` (eval it in your shell)
#   bash scripts/slurm-local.sh status  # the daemons this script started, and sinfo
#   bash scripts/slurm-local.sh stop    # stop only the daemons this script started (by pid file)
#
# Idempotent: `start` on a running cluster of this script does nothing; leftovers of an earlier
# run (its pid files) are stopped first. Needs root. Everything lives under $HCS_SLURM_DIR
# (default /tmp/hcs-slurm). Configuration verified on Debian bookworm, Slurm 22.05 / munge 0.5
# (see ../shared/reference/infra.md, part A.1): no cgroups, no accounting, scheduling passes
# without the default 3 s delay.
set -euo pipefail
SCRIPTS=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)

DIR=${HCS_SLURM_DIR:-/tmp/hcs-slurm}
CPUS=${HCS_SLURM_CPUS:-$(nproc)}
CTLD_PORT=${HCS_SLURM_CTLD_PORT:-6817}
D_PORT=${HCS_SLURM_D_PORT:-6818}
CONF=$DIR/slurm.conf
MUNGE=$DIR/munge

say() { printf 'slurm-local: %s\n' "$*" >&2; }

# A pid is running `name` (a zombie counts as stopped: PID 1 reaps late in some sandboxes).
running() {
  local pid=$1 name=$2
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]
}
pid_in() { [ -s "$1" ] && cat "$1" || true; }
stop_one() {
  local pid name=$2
  pid=$(pid_in "$1")
  running "$pid" "$name" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do running "$pid" "$name" || return 0; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true
}
all_running() {
  running "$(pid_in "$MUNGE/munged.pid")" munged &&
    running "$(pid_in "$DIR/run/slurmctld.pid")" slurmctld &&
    running "$(pid_in "$DIR/run/slurmd.pid")" slurmd
}

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null &&
    command -v munged >/dev/null; then
    return
  fi
  bash "$SCRIPTS/apt-install.sh" slurmctld slurmd slurm-client munge
}

munge_key() {
  [ -s /etc/munge/munge.key ] && return
  install -d -o munge -g munge -m 0700 /etc/munge
  if command -v mungekey >/dev/null; then
    runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
  else
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
}

write_config() {
  cat >"$CONF" <<EOF
ClusterName=hcslocal
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE/munge.socket
CommunicationParameters=NoInAddrAny
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=600
SlurmctldPort=$CTLD_PORT
SlurmdPort=$D_PORT
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmdSpoolDir=$DIR/spool/slurmd
StateSaveLocation=$DIR/spool/slurmctld
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

wait_for_file() {
  for _ in $(seq 1 100); do [ -s "$1" ] && return 0; sleep 0.1; done
  say "timed out waiting for $1"
  return 1
}

stop() {
  stop_one "$DIR/run/slurmd.pid" slurmd
  stop_one "$DIR/run/slurmctld.pid" slurmctld
  stop_one "$MUNGE/munged.pid" munged
}

start() {
  [ "$(id -u)" = 0 ] || { say "must run as root"; exit 1; }
  if all_running; then
    say "already running (SLURM_CONF=$CONF)"
    return
  fi
  install_packages
  munge_key
  stop
  rm -rf "$DIR"
  install -d -m 0755 "$DIR" "$DIR/run" "$DIR/log" "$DIR/spool/slurmd" "$DIR/spool/slurmctld"
  install -d -o munge -g munge -m 0755 "$MUNGE"
  write_config
  runuser -u munge -- /usr/sbin/munged --socket="$MUNGE/munge.socket" --pid-file="$MUNGE/munged.pid" \
    --log-file="$MUNGE/munged.log" --seed-file="$MUNGE/munged.seed"
  wait_for_file "$MUNGE/munged.pid"
  /usr/sbin/slurmctld -f "$CONF"
  wait_for_file "$DIR/run/slurmctld.pid"
  /usr/sbin/slurmd -f "$CONF" -N localhost
  wait_for_file "$DIR/run/slurmd.pid"
  local state=""
  for _ in $(seq 1 150); do
    state=$(SLURM_CONF=$CONF sinfo -h -n localhost -o %T 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.2
  done
  if [ "$state" != idle ]; then
    say "the node never became idle (state '$state'); logs:"
    tail -n 20 "$DIR"/log/*.log >&2 || true
    stop
    exit 1
  fi
  say "up: munged $(pid_in "$MUNGE/munged.pid"), slurmctld $(pid_in "$DIR/run/slurmctld.pid"), slurmd $(pid_in "$DIR/run/slurmd.pid"); export SLURM_CONF=$CONF"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  status)
    if all_running; then
      echo "running (SLURM_CONF=$CONF)"
      SLURM_CONF=$CONF sinfo
    else
      echo "not running"
      exit 1
    fi
    ;;
  *)
    echo "usage: bash scripts/slurm-local.sh start|stop|status|env" >&2
    exit 2
    ;;
esac
