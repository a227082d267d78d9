# Where the local one-node SLURM cluster lives and which ports it uses; sourced by start.sh,
# stop.sh and tests/test_slurm.py's fixture. Everything is under one directory, so the cluster
# touches nothing system-wide (no /etc/slurm, no /run/munge) and clients find it via SLURM_CONF:
#   source .ci/slurm/env.sh && sinfo
# Override MODECONN_SLURM_DIR / MODECONN_SLURM_PORT before sourcing to run a second one.
export MODECONN_SLURM_DIR="${MODECONN_SLURM_DIR:-/tmp/modeconn-slurm}"
export MODECONN_SLURM_PORT="${MODECONN_SLURM_PORT:-16817}"
export SLURM_CONF="$MODECONN_SLURM_DIR/etc/slurm.conf"

SLURM_RUN="$MODECONN_SLURM_DIR/run"           # pid files, sockets
SLURM_LOG="$MODECONN_SLURM_DIR/log"           # daemons' logs
SLURM_STATE="$MODECONN_SLURM_DIR/state"       # slurmctld's saved state
SLURM_SPOOL="$MODECONN_SLURM_DIR/spool"       # slurmd's job scripts
SLURM_DB="$MODECONN_SLURM_DIR/mysql"          # MariaDB's data (job accounting for sacct)
MUNGE_SOCKET="$SLURM_RUN/munge.socket"
MYSQL_SOCKET="$SLURM_RUN/mysqld.sock"
SLURMCTLD_PORT="$MODECONN_SLURM_PORT"
SLURMD_PORT=$((MODECONN_SLURM_PORT + 1))
SLURMDBD_PORT=$((MODECONN_SLURM_PORT + 2))
MYSQL_PORT=$((MODECONN_SLURM_PORT + 3))
