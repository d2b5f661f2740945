#!/bin/sh
# Install everything zcache-forge needs on Debian 12; quick when all is there already.
# Run as root (apt-get). Used by the README's quick start and by .ci/run.
set -eu
cd "$(dirname "$0")"

APT="linux-source-6.1 qemu-system-x86 busybox-static flex bison bc libelf-dev libssl-dev
ccache cpio git git-email gcc make perl xz-utils python3-pip e2fsprogs lava-dispatcher distcc postgresql"

missing=""
for p in $APT; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup: apt-get install$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q $missing
fi

# lava-server (the LAVA lab the --runner lava test starts on 127.0.0.1) creates its database when
# it is installed, so PostgreSQL must run then; there is no systemd here to start it.
if ! dpkg-query -W -f='${Status}' lava-server 2>/dev/null | grep -q "install ok installed"; then
    echo "setup: apt-get install lava-server (with PostgreSQL running)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    pg_lsclusters -h | awk '$4 != "online" {print $1, $2}' | while read -r version cluster; do
        pg_ctlcluster "$version" "$cluster" start
    done
    apt-get install -y -q lava-server
fi

if ! python3 -c "import zcache_forge, jinja2, git, yaml, invoke, pydantic, pytest, aiosmtpd, matplotlib, tuxlava, ruff" 2>/dev/null; then
    echo "setup: pip install -e .[test]"
    python3 -m pip install -q --root-user-action=ignore -e ".[test]"
fi
