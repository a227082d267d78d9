#!/usr/bin/env bash
# Stop the local SLURM cluster that start.sh started: cancel its jobs, then stop the daemons its
# pid files name (the cluster's, then munge and the database). Its directory stays, for the logs.
set -uo pipefail
source "$(cd "$(dirname "$0")" && pwd)/env.sh"
# Cancel the jobs first, while the controller runs: slurmd leaves running job steps behind when
# it stops, and nothing would end them later.
if [ -s "$SLURM_RUN/slurmctld.pid" ] && kill -0 "$(cat "$SLURM_RUN/slurmctld.pid")" 2>/dev/null; then
    jobs="$(squeue -h -o %A 2>/dev/null | sort -u)"
    if [ -n "$jobs" ]; then
        scancel $jobs 2>/dev/null
        for _ in $(seq 150); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
    fi
fi
stop() {  # stop DAEMON...: SIGTERM to each at once, SIGKILL to any still there after 10 s
    local pids=() daemon pid
    for daemon in "$@"; do
        [ -s "$SLURM_RUN/$daemon.pid" ] && pid="$(cat "$SLURM_RUN/$daemon.pid")" && kill "$pid" 2>/dev/null && pids+=("$pid")
        rm -f "$SLURM_RUN/$daemon.pid"
    done
    for _ in $(seq 100); do
        alive=0; for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && return 0; sleep 0.1
    done
    for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null; done
    return 0
}
stop slurmd slurmctld                  # the cluster, then what it used
stop slurmdbd mariadbd munged
exit 0
