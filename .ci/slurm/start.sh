#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine (localhost, all its cores), as root, from
# Debian's packages (install.sh / `make slurm`): munged, MariaDB + slurmdbd (accounting, which
# sacct and so submitit read), slurmctld and slurmd, all under $MODECONN_SLURM_DIR (env.sh).
# Waits until the node is idle. Clients then need only SLURM_CONF:
#   .ci/slurm/start.sh && source .ci/slurm/env.sh && sinfo
#   modeconn -m hydra/launcher=submitit_slurm ... ; .ci/slurm/stop.sh
# Starting again stops the earlier instance and starts from a clean state.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/env.sh"

fail() { echo "start.sh: $*" >&2; for f in "$SLURM_LOG"/*.log; do [ -e "$f" ] && { echo "== $f" >&2; tail -n 15 "$f" >&2; }; done; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (slurmd runs jobs as their user, munged and MariaDB here as root)"
for bin in munged slurmctld slurmd slurmdbd sinfo sacct mariadbd mariadb-install-db mariadb; do
    command -v "$bin" >/dev/null || fail "$bin not found: run .ci/slurm/install.sh (or make slurm) where apt is available"
done
"$here/stop.sh" >/dev/null 2>&1 || true
rm -rf "$MODECONN_SLURM_DIR"
mkdir -p "$MODECONN_SLURM_DIR/etc" "$SLURM_RUN" "$SLURM_LOG" "$SLURM_STATE" "$SLURM_SPOOL"

wait_for() {  # wait_for SECONDS WHAT COMMAND...: retry COMMAND every 0.2 s until it succeeds
    local seconds=$1 what=$2; shift 2
    for _ in $(seq $((seconds * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    fail "$what did not come up in ${seconds} s"
}

# munge: a fresh key of our own, a private socket (slurm.conf's AuthInfo points at it).
dd if=/dev/urandom of="$MODECONN_SLURM_DIR/etc/munge.key" bs=1024 count=1 status=none
chmod 400 "$MODECONN_SLURM_DIR/etc/munge.key"
munged --force --key-file="$MODECONN_SLURM_DIR/etc/munge.key" --socket="$MUNGE_SOCKET" \
    --pid-file="$SLURM_RUN/munged.pid" --log-file="$SLURM_LOG/munged.log" --seed-file="$SLURM_RUN/munge.seed" \
    || fail "munged did not start"
wait_for 10 munged test -S "$MUNGE_SOCKET"

# MariaDB on 127.0.0.1:$MYSQL_PORT for slurmdbd, with a user of its own.
mariadb-install-db --no-defaults --datadir="$SLURM_DB" --user=root --auth-root-authentication-method=socket \
    --skip-test-db >"$SLURM_LOG/mariadb-install.log" 2>&1 || fail "mariadb-install-db failed (see $SLURM_LOG)"
setsid nohup mariadbd --no-defaults --datadir="$SLURM_DB" --user=root --socket="$MYSQL_SOCKET" \
    --port="$MYSQL_PORT" --bind-address=127.0.0.1 --skip-name-resolve --pid-file="$SLURM_RUN/mariadbd.pid" \
    --log-error="$SLURM_LOG/mariadbd.log" --innodb-buffer-pool-size=32M </dev/null >/dev/null 2>&1 &
wait_for 30 MariaDB mariadb --no-defaults --socket="$MYSQL_SOCKET" -e "SELECT 1"
mariadb --no-defaults --socket="$MYSQL_SOCKET" -e "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'modeconn'; \
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"

host="$(hostname -s)"
cat >"$MODECONN_SLURM_DIR/etc/slurmdbd.conf" <<CONF
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$SLURMDBD_PORT
SlurmUser=root
PidFile=$SLURM_RUN/slurmdbd.pid
LogFile=$SLURM_LOG/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$MYSQL_PORT
StorageUser=slurm
StoragePass=modeconn
StorageLoc=slurm_acct_db
CONF
chmod 600 "$MODECONN_SLURM_DIR/etc/slurmdbd.conf"
slurmdbd || fail "slurmdbd did not start"       # reads slurmdbd.conf beside $SLURM_CONF
wait_for 30 slurmdbd bash -c "exec 3<>/dev/tcp/127.0.0.1/$SLURMDBD_PORT"

# slurm.conf for this host: one node with this machine's cores and memory, no cgroups
# (linuxproc tracks a job's processes, no task binding), accounting through slurmdbd.
cpus="$(nproc)"
memory_mb="$(free -m | awk '/^Mem:/ {print $2}')"
cat >"$SLURM_CONF" <<CONF
ClusterName=modeconn
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$SLURMCTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$SLURM_STATE
SlurmdSpoolDir=$SLURM_SPOOL
SlurmctldPidFile=$SLURM_RUN/slurmctld.pid
SlurmdPidFile=$SLURM_RUN/slurmd.pid
SlurmctldLogFile=$SLURM_LOG/slurmctld.log
SlurmdLogFile=$SLURM_LOG/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$SLURMDBD_PORT
AccountingStoragePass=$MUNGE_SOCKET   # the munge socket for slurmdbd connections
JobCompType=jobcomp/none
SchedulerParameters=sched_interval=2
MessageTimeout=30
KillWait=10
PlugStackConfig=$MODECONN_SLURM_DIR/etc/plugstack.conf
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
: >"$MODECONN_SLURM_DIR/etc/plugstack.conf"
slurmctld || fail "slurmctld did not start"
wait_for 30 slurmctld scontrol ping
slurmd || fail "slurmd did not start"
wait_for 60 "the node ($host, idle)" bash -c '[ "$(sinfo -h -N -o %T)" = idle ]'
wait_for 30 "accounting (sacct)" sacct -n -X
echo "SLURM cluster up: node $host, $cpus CPUs, ${memory_mb} MB; export SLURM_CONF=$SLURM_CONF"
