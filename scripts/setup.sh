#!/usr/bin/env bash
# Sets up a fresh Debian machine for celery-autopilot: system packages, the virtualenv with the
# package installed editable, and the loopback services the demo needs. Safe to run again: every
# step first checks whether it is already done.
#
# Sourced by ./run.sh; can also be run on its own.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${AUTOPILOT_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else log "need root for: $*"; return 1
    fi
}

# Debian package that provides each command the project runs.
declare -A PACKAGE_FOR=(
    [redis-server]=redis-server
    [redis-cli]=redis-tools
    [prometheus]=prometheus
    [promtool]=prometheus
    [prometheus-alertmanager]=prometheus-alertmanager
    [amtool]=prometheus-alertmanager
    [chromium]=chromium
    [chromedriver]=chromium-driver
    [openssl]=openssl
    [node]=nodejs
    [npm]=npm
)

install_system_packages() {
    local missing=()
    local cmd
    for cmd in "${!PACKAGE_FOR[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("${PACKAGE_FOR[$cmd]}")
    done
    if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        missing+=(python3-venv)
    fi
    [ ${#missing[@]} -eq 0 ] && return 0
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    log "installing system packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # policy-rc.d keeps Debian's maintainer scripts from starting prometheus/alertmanager/redis
    # services on their default ports: the project starts what it needs itself, on loopback.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod +x "$policy"
        created_policy=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    [ "$created_policy" = 1 ] && as_root rm -f "$policy"
    return 0
}

install_python_package() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating virtualenv $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    # Reinstall only when the dependency list changed since the last successful install.
    local stamp="$VENV/.autopilot-stamp" want
    want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        log "installing celery-autopilot (editable) with test, bench and demo extras"
        "$VENV/bin/python" -m pip install -q --upgrade pip
        "$VENV/bin/python" -m pip install -q -e "$ROOT[test,bench,demo]"
        echo "$want" > "$stamp"
    fi
}

install_node_modules() {
    # The tests' OpenID provider (tests/support/oidc) is panva's oidc-provider run by Node.js;
    # `npm ci` installs exactly the committed lock, again only when the lock changed.
    local dir="$ROOT/tests/support/oidc" stamp want
    stamp="$dir/node_modules/.autopilot-stamp"
    want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        log "installing the test OpenID provider's node modules (npm ci in tests/support/oidc)"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
        echo "$want" > "$stamp"
    fi
}

redis_answers() { redis-cli -h 127.0.0.1 -p "${1:-6379}" ping 2>/dev/null | grep -q PONG; }

start_redis() {
    redis_answers 6379 && return 0
    log "starting redis-server on 127.0.0.1:6379"
    mkdir -p "$ROOT/var/redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --dir "$ROOT/var/redis" --logfile "$ROOT/var/redis/redis.log"
    local i
    for i in $(seq 1 50); do redis_answers 6379 && return 0; sleep 0.1; done
    log "redis-server did not answer on 127.0.0.1:6379; see $ROOT/var/redis/redis.log"
    return 1
}

start_rabbitmq_if_installed() {
    # RabbitMQ is optional: the AMQP tests skip with a reason when it is not reachable.
    (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && return 0
    command -v rabbitmq-server >/dev/null 2>&1 || return 0
    log "starting rabbitmq-server (detached)"
    as_root rabbitmq-server -detached >/dev/null 2>&1 || true
    local i
    for i in $(seq 1 60); do (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && return 0; sleep 0.5; done
    log "rabbitmq-server did not come up; AMQP tests will be skipped"
}

setup_all() {
    install_system_packages
    install_python_package
    install_node_modules
    start_redis
    start_rabbitmq_if_installed
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    setup_all
fi
