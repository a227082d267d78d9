#!/usr/bin/env bash
# Debian's SLURM for the local one-node cluster (needs root and apt): the controller and node
# daemons, munge for their authentication, and slurmdbd + MariaDB for job accounting (submitit
# reads job states with `sacct`; without accounting a job killed before it wrote its result
# would be waited for forever).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends slurm-wlm munge slurmdbd mariadb-server >/dev/null
