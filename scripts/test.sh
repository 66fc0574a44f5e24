#!/usr/bin/env bash
# Install what the test suite needs on Debian, then run pytest in a virtualenv made with the
# interpreter the README names (Debian's /usr/bin/python3; python3 elsewhere).
#   bash scripts/test.sh [pytest args...]      (bash .ci/run passes its arguments here)
# Works as root (no sudo needed) and as a user with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
need=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
[ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
command -v zbarimg >/dev/null 2>&1 || need+=(zbar-tools)
python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3)
"$python" -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]} (apt)" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

venv=${BLAZZ_TEST_VENV:-.venv}
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
# Reinstall only when the package's declared dependencies changed (a no-op pip run costs seconds).
stamp="$venv/.blazz-test-install"
want=$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! "$venv/bin/python" -c 'import blazzctl, pytest' 2>/dev/null; then
    "$venv/bin/pip" install -q --disable-pip-version-check -e '.[test]'
    echo "$want" >"$stamp"
fi
export PATH="$PWD/$venv/bin:$PATH"
# The suite waits on real processes (daemons, Chromium, MariaDB) much of the time: three pytest-xdist
# workers overlap those waits. BLAZZ_TEST_WORKERS=0 (or -n / -p no:xdist / --co given) runs one process.
workers=${BLAZZ_TEST_WORKERS:-3}
for arg in "$@"; do
    case $arg in -n | -n* | --numprocesses* | no:xdist | --co | --collect-only | --pdb) workers=0 ;; esac
done
if [ "$workers" != 0 ]; then
    set -- -n "$workers" "$@"
fi
exec "$venv/bin/python" -m pytest "$@"
