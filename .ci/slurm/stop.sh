#!/usr/bin/env bash
# Stop the local SLURM cluster that start.sh started (the daemons named by its pid files, in
# the reverse order) and leave its directory for the logs.
set -uo pipefail
source "$(cd "$(dirname "$0")" && pwd)/env.sh"
for daemon in slurmd slurmctld slurmdbd mariadbd munged; do
    pidfile="$SLURM_RUN/$daemon.pid"
    [ -s "$pidfile" ] || continue
    pid="$(cat "$pidfile")"
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    rm -f "$pidfile"
done
exit 0
