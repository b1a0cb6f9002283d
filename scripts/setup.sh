#!/usr/bin/env bash
# Sets up a fresh Debian machine for celery-autopilot: system packages, the virtualenv with the
# package installed editable, and the loopback services the demo needs. setup_demo does what the
# live demo needs, setup_all everything the tests need too. Safe to run again: every step first
# checks whether it is already done.
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
# What the live demo runs; the tests need every command above.
DEMO_COMMANDS=(redis-server redis-cli prometheus prometheus-alertmanager)
# Packages whose Debian service would take a port the demo uses (6379, 9090, 9093) at every boot.
SERVICE_PACKAGES=(redis-server prometheus prometheus-alertmanager)
POLICY_RC_D="${POLICY_RC_D:-/usr/sbin/policy-rc.d}"

install_system_packages() {  # commands...
    local missing=() cmd
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("${PACKAGE_FOR[$cmd]}")
    done
    if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        missing+=(python3-venv)
    fi
    [ ${#missing[@]} -eq 0 ] && return 0
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    install_packages "${missing[@]}"
}

install_packages() {  # packages...
    log "installing system packages: $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # policy-rc.d keeps Debian's maintainer scripts from starting prometheus/alertmanager/redis
    # services on their default ports: the project starts what it needs itself, on loopback. It is
    # removed again whatever happens, or it would stop every service apt installs later.
    if [ ! -e "$POLICY_RC_D" ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$POLICY_RC_D" >/dev/null
        as_root chmod +x "$POLICY_RC_D"
        trap 'as_root rm -f "$POLICY_RC_D"' EXIT
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
    if [ "$(trap -p EXIT)" ]; then
        as_root rm -f "$POLICY_RC_D"
        trap - EXIT
    fi
    disable_services "$@"
}

disable_services() {  # packages just installed
    # Not started now, but enabled: after a reboot they would hold 6379, 9090 and 9093, and the
    # demo would refuse to start. Only services this script installed are touched.
    local pkg units=()
    for pkg in "$@"; do
        [[ " ${SERVICE_PACKAGES[*]} " == *" $pkg "* ]] && units+=("$pkg")
    done
    [ ${#units[@]} -eq 0 ] && return 0
    log "disabling the services apt enabled (${units[*]}): the demo and the tests start their own"
    if [ -d /run/systemd/system ]; then
        as_root systemctl disable --now "${units[@]}" || log "could not disable ${units[*]}"
    elif command -v systemctl >/dev/null 2>&1; then
        as_root systemctl disable "${units[@]}" || log "could not disable ${units[*]}"
    else
        for pkg in "${units[@]}"; do as_root update-rc.d "$pkg" disable || log "could not disable $pkg"; done
    fi
}

install_python_package() {  # extras, e.g. demo or test,bench,demo
    local extras="$1" stamp="$VENV/.autopilot-stamp" want have_hash="" have_extras="" extra
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating virtualenv $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    # Reinstall only when the dependency list changed, or extras are wanted that are not there.
    want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
    [ -f "$stamp" ] && read -r have_hash have_extras < "$stamp"
    if [ "$have_hash" = "$want" ]; then
        for extra in ${extras//,/ }; do
            [[ ",$have_extras," == *",$extra,"* ]] || have_hash=""
        done
        [ -n "$have_hash" ] && return 0
    fi
    log "installing celery-autopilot (editable) with the $extras extras"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e "$ROOT[$extras]"
    echo "$want $extras" > "$stamp"
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

# What ./run.sh demo needs: Redis, Prometheus, Alertmanager and the package with its demo extra.
setup_demo() {
    install_system_packages "${DEMO_COMMANDS[@]}"
    install_python_package demo
    start_redis
}

# Everything: what the tests need, which includes the demo's needs.
setup_all() {
    install_system_packages "${!PACKAGE_FOR[@]}"
    install_python_package test,bench,demo
    install_node_modules
    start_redis
    start_rabbitmq_if_installed
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    setup_all
fi
