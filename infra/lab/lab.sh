#!/usr/bin/env bash
# The two-node HA lab: network namespaces, sshd, keepalived, a PostgreSQL primary/standby pair, the
# application stand-in and the config-sync job, all on this machine. See infra/lab/README.md.
#
#   lab.sh check                    prerequisites only (exit 3 not root, 4 no netns, 5 package missing)
#   lab.sh up [--fresh]             bring the lab up; a healthy lab is left as it is (unless --fresh),
#                                   anything else (a crashed run, another ADVERT_INT) is rebuilt
#   lab.sh down                     stop every lab process, delete namespaces, links and the state dir
#   lab.sh status                   what runs (exit 0 up, 6 degraded, 7 down)
#   lab.sh priority NODE PRIORITY   rewrite NODE's keepalived priority and SIGHUP it
#   lab.sh ssh NODE [COMMAND...]    ssh into NODE with the lab key and pinned host keys
#
# Environment: LAB_DIR (/tmp/ha-lab), ADVERT_INT (1 or 0.1), SYNC_INTERVAL (seconds between config
# syncs, 2), LAB_POSTGRES (1; 0 leaves the database out), LAB_KEEP_STATE (1: down keeps LAB_DIR),
# NODE (the node binary the units and the agent run with).
set -euo pipefail

readonly EXIT_FAILED=1 EXIT_USAGE=2 EXIT_NOT_ROOT=3 EXIT_NO_NETNS=4 EXIT_MISSING=5
readonly EXIT_DEGRADED=6 EXIT_DOWN=7

LAB_DIR="${LAB_DIR:-/tmp/ha-lab}"
LAB_DIR="${LAB_DIR%/}"
ADVERT_INT="${ADVERT_INT:-1}"
SYNC_INTERVAL="${SYNC_INTERVAL:-2}"
LAB_POSTGRES="${LAB_POSTGRES:-1}"
LAB_KEEP_STATE="${LAB_KEEP_STATE:-0}"

readonly LAB_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly REPO_ROOT="$(cd "$LAB_HOME/../.." && pwd)"
readonly FAKES_DIR="$REPO_ROOT/packages/testkit/fakes"
readonly AGENT_JS="$REPO_ROOT/apps/ha-orchestrator/dist/agent.js"
readonly PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"

readonly SUBNET_PREFIX=24
readonly ROOT_IP=10.99.0.1
readonly VIP=10.99.0.100
readonly NODES=(node-a node-b)
readonly NAMESPACES=(lab node-a node-b client)
readonly APP_PORT=8080
readonly PG_PORT=5432
readonly APP_UNIT=ha-app.service
readonly SYNC_UNIT=ha-config-sync.service
readonly INITIAL_VERSION=1.0.0

die() {
  local code=$1
  shift
  echo "lab: $*" >&2
  exit "$code"
}
log() { echo "lab: $*"; }

node_ip() {
  case "$1" in
    node-a) echo 10.99.0.11 ;;
    node-b) echo 10.99.0.12 ;;
    *) die "$EXIT_USAGE" "unknown node '$1' (node-a or node-b)" ;;
  esac
}
peer_of() { if [ "$1" = node-a ]; then echo node-b; else echo node-a; fi; }
initial_priority() { if [ "$1" = node-a ]; then echo 150; else echo 100; fi; }
ndir() { echo "$LAB_DIR/$1"; }

# --- prerequisites ----------------------------------------------------------------------------

check() {
  [ "$(id -u)" = 0 ] || die "$EXIT_NOT_ROOT" "must run as root (network namespaces, sshd on port 22, keepalived)"
  local missing=()
  local cmd
  # Debian packages first (keepalived, openssh-server, rsync, iproute2), unless LAB_INSTALL=0.
  for cmd in ip keepalived sshd rsync; do
    if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ] && [ "${LAB_INSTALL:-1}" = 1 ]; then
      bash "$REPO_ROOT/scripts/ensure-system-packages.sh" >&2 || true
      break
    fi
  done
  for cmd in ip keepalived sshd ssh ssh-keygen rsync unshare runuser setsid; do
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$cmd")
  done
  if [ "$LAB_POSTGRES" = 1 ]; then
    for cmd in initdb pg_ctl pg_basebackup psql; do
      [ -x "$PG_BIN/$cmd" ] || missing+=("$PG_BIN/$cmd")
    done
    id postgres >/dev/null 2>&1 || missing+=("user postgres")
  fi
  [ -x "${NODE:-}" ] || command -v node >/dev/null 2>&1 || missing+=(node)
  if [ ${#missing[@]} -gt 0 ]; then
    die "$EXIT_MISSING" "missing: ${missing[*]} (scripts/ensure-system-packages.sh installs keepalived, openssh-server, rsync, iproute2; PostgreSQL 15 is expected in PG_BIN=$PG_BIN)"
  fi
  local probe="ha-lab-probe-$$"
  if ! ip netns add "$probe" >/dev/null 2>&1; then
    die "$EXIT_NO_NETNS" "cannot create network namespaces here ('ip netns add' failed)"
  fi
  ip netns del "$probe" >/dev/null 2>&1 || true
  case "$ADVERT_INT" in
    1 | 0.1) ;;
    *) die "$EXIT_USAGE" "ADVERT_INT must be 1 or 0.1, not '$ADVERT_INT'" ;;
  esac
}

node_bin() {
  if [ -n "${NODE:-}" ]; then echo "$NODE"; else command -v node; fi
}

# --- processes --------------------------------------------------------------------------------

# Live (non-zombie) pids whose command line mentions the state dir: every lab daemon carries a
# path under it (config file, data dir) or the --ha-lab=<dir> tag, even in a namespace that lost
# its name when a run crashed.
tagged_pids() {
  local file pid
  grep -lsaF -e "$LAB_DIR/" -e "--ha-lab=$LAB_DIR" /proc/[0-9]*/cmdline 2>/dev/null | while read -r file; do
    pid="${file#/proc/}"
    pid="${pid%/cmdline}"
    if [ "$pid" != "$$" ] && is_alive "$pid"; then echo "$pid"; fi
  done || true
  return 0
}

# A killed process may stay a zombie for seconds under this PID 1: that counts as exited.
is_alive() {
  local state
  state="$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null)" || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

namespace_pids() {
  local ns
  for ns in "${NAMESPACES[@]}"; do
    [ -e "/run/netns/$ns" ] && ip netns pids "$ns" 2>/dev/null
  done
  return 0
}

lab_pids() {
  { namespace_pids; tagged_pids; } | sort -un | while read -r pid; do
    if [ "$pid" != "$$" ] && is_alive "$pid"; then echo "$pid"; fi
  done || true
  return 0
}

pid_from_file() {
  local pid
  pid="$(head -n1 "$1" 2>/dev/null | tr -dc '0-9')" || return 1
  [ -n "$pid" ] && is_alive "$pid" && echo "$pid"
}

# --- down -------------------------------------------------------------------------------------

now_ms() { date +%s%3N; }

# Waits until none of the given pids is alive, at most $1 ms.
wait_gone() {
  local deadline=$(($(now_ms) + $1)) pid alive
  shift
  while :; do
    alive=0
    for pid in "$@"; do
      if is_alive "$pid"; then alive=1; fi
    done
    [ $alive = 1 ] && [ "$(now_ms)" -lt $deadline ] || break
    sleep 0.05
  done
}

down() {
  # The root end first: namespace deletion is asynchronous and would keep the link around.
  ip link del ha-root >/dev/null 2>&1 || true
  local node pid postmasters=() others=()
  # PostgreSQL gets an immediate shutdown (SIGQUIT), which still frees its shared memory; nothing
  # else in the lab needs a graceful stop (keepalived's takes a second), so the rest is SIGKILLed.
  for node in "${NODES[@]}"; do
    if pid="$(pid_from_file "$(ndir "$node")/pg/data/postmaster.pid")"; then
      postmasters+=("$pid")
      kill -QUIT "$pid" 2>/dev/null || true
    fi
  done
  for pid in $(lab_pids); do
    [[ " ${postmasters[*]} " == *" $pid "* ]] || others+=("$pid")
  done
  if [ ${#others[@]} -gt 0 ]; then kill -KILL "${others[@]}" 2>/dev/null || true; fi
  if [ ${#postmasters[@]} -gt 0 ]; then wait_gone 5000 "${postmasters[@]}"; fi
  local ns left
  for attempt in 1 2 3; do
    left="$(lab_pids)"
    [ -n "$left" ] || break
    # shellcheck disable=SC2086
    kill -KILL $left 2>/dev/null || true
    # shellcheck disable=SC2086
    wait_gone 3000 $left
  done
  for ns in "${NAMESPACES[@]}"; do
    [ -e "/run/netns/$ns" ] && ip netns del "$ns" 2>/dev/null || true
  done
  left="$(lab_pids)"
  [ -z "$left" ] || die "$EXIT_FAILED" "processes still alive after SIGKILL: $(echo $left)"
  if [ "$LAB_KEEP_STATE" != 1 ] && [ -f "$LAB_DIR/.ha-lab" ]; then
    rm -rf "$LAB_DIR"
  fi
  return 0
}

# --- up ---------------------------------------------------------------------------------------

build_network() {
  ip netns add lab
  ip -n lab link set lo up
  ip -n lab link add br0 type bridge
  ip -n lab link set br0 up
  local node
  for node in "${NODES[@]}"; do
    ip netns add "$node"
    ip -n "$node" link set lo up
    ip link add "hl-$node" netns lab type veth peer name eth0 netns "$node"
    ip -n lab link set "hl-$node" master br0 up
    ip -n "$node" addr add "$(node_ip "$node")/$SUBNET_PREFIX" dev eth0
    ip -n "$node" link set eth0 up
  done
  ip link add ha-root type veth peer name hl-root netns lab
  ip -n lab link set hl-root master br0 up
  ip addr add "$ROOT_IP/$SUBNET_PREFIX" dev ha-root
  ip link set ha-root up
}

build_ssh() {
  local ssh="$LAB_DIR/ssh"
  mkdir -p "$ssh"
  ssh-keygen -q -t ed25519 -N '' -C ha-lab -f "$ssh/id_ed25519"
  cp "$ssh/id_ed25519.pub" "$ssh/authorized_keys"
  : >"$ssh/known_hosts"
  local node d
  for node in "${NODES[@]}"; do
    d="$(ndir "$node")/sshd"
    mkdir -p "$d"
    ssh-keygen -q -t ed25519 -N '' -C "$node" -f "$d/host_ed25519"
    echo "$(node_ip "$node") $(cut -d' ' -f1,2 "$d/host_ed25519.pub")" >>"$ssh/known_hosts"
    cat >"$d/sshd_config" <<EOF
ListenAddress $(node_ip "$node"):22
HostKey $d/host_ed25519
PidFile $d/sshd.pid
AuthorizedKeysFile $ssh/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
MaxStartups 100:30:200
MaxSessions 50
Subsystem sftp internal-sftp
EOF
  done
}

# sshd needs /run/sshd: each node's sshd gets a tmpfs /run in its own mount namespace, its own
# hostname and its own /root (the host's shell rc files are not the node's), so sessions and the
# units an agent starts through them see the node's view.
start_sshd() {
  local node=$1 d home
  d="$(ndir "$node")/sshd"
  home="$(ndir "$node")/home"
  mkdir -p -m 700 "$home"
  setsid ip netns exec "$node" unshare --uts sh -c \
    "hostname $node && mount -t tmpfs -o mode=755 ha-lab-run /run && mkdir -m 755 /run/sshd && mount --bind $home /root && exec /usr/sbin/sshd -D -e -f $d/sshd_config" \
    >>"$(ndir "$node")/logs/sshd.log" 2>&1 </dev/null &
}

write_keepalived_config() {
  local node=$1 priority=$2 file=$3
  cat >"$file.tmp" <<EOF
global_defs {
    router_id $node
    vrrp_version 3
}

vrrp_instance HA_VIP {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority $priority
    advert_int $ADVERT_INT
    unicast_src_ip $(node_ip "$node")
    unicast_peer {
        $(node_ip "$(peer_of "$node")")
    }
    virtual_ipaddress {
        $VIP/$SUBNET_PREFIX dev eth0
    }
}
EOF
  mv "$file.tmp" "$file"
}

start_keepalived() {
  local node=$1 d
  d="$(ndir "$node")/keepalived"
  # -n: the process we start is the one that reloads on SIGHUP and writes the pid file.
  setsid ip netns exec "$node" keepalived -n -l -D --vrrp -f "$d/keepalived.conf" -p "$d/keepalived.pid" \
    -r "$d/vrrp.pid" -i "$node" >>"$(ndir "$node")/logs/keepalived.log" 2>&1 </dev/null &
}

pg() { runuser -u postgres -- "$PG_BIN/$1" "${@:2}"; }

write_pg_settings() {
  local node=$1 data
  data="$(ndir "$node")/pg/data"
  cat >>"$data/postgresql.conf" <<EOF

# ha-lab $node: every address of the namespace, so clients reach the primary through the VIP
listen_addresses = '*'
port = $PG_PORT
unix_socket_directories = '$(ndir "$node")/pg/sock'
cluster_name = '$node'
wal_level = replica
wal_log_hints = on
max_wal_senders = 5
# A peer cut off (link down) is noticed in seconds, so a clean stop of the primary for a
# switchover is not held up by a WAL sender waiting on a dead connection.
wal_sender_timeout = 5s
wal_receiver_timeout = 5s
hot_standby = on
fsync = off
shared_buffers = 16MB
EOF
}

start_pg() {
  local node=$1
  ip netns exec "$node" runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$(ndir "$node")/pg/data" \
    -l "$(ndir "$node")/logs/postgres.log" -w -t 30 start >/dev/null
}

build_postgres() {
  local node d
  for node in "${NODES[@]}"; do
    d="$(ndir "$node")/pg"
    mkdir -p "$d/sock"
    chown -R postgres:postgres "$d"
    chmod 700 "$d"
    chown postgres:postgres "$(ndir "$node")/logs"
  done
  local a b
  a="$(ndir node-a)/pg"
  b="$(ndir node-b)/pg"
  pg initdb -D "$a/data" -A trust -U postgres --no-sync >/dev/null
  write_pg_settings node-a
  cat >>"$a/data/pg_hba.conf" <<EOF
host all all 10.99.0.0/$SUBNET_PREFIX trust
host replication all 10.99.0.0/$SUBNET_PREFIX trust
EOF
  start_pg node-a
  pg psql -h "$a/sock" -U postgres -qAt -c 'create database app' >/dev/null
  ip netns exec node-b runuser -u postgres -- "$PG_BIN/pg_basebackup" -h "$(node_ip node-a)" -p "$PG_PORT" \
    -U postgres -D "$b/data" -R -X stream -c fast
  write_pg_settings node-b
  start_pg node-b
}

# The application the upgrade replaces: a jar, its version file, a config dir with the root key
# beside it, a unit per service, and the agent's view of all of it.
build_node_files() {
  local node=$1 d
  d="$(ndir "$node")"
  mkdir -p "$d/app" "$d/config" "$d/keys" "$d/systemd" "$d/staging" "$d/backups" "$d/rsync" "$d/logs"
  printf 'ha-lab stand-in jar %s\n' "$INITIAL_VERSION" >"$d/app/app.jar"
  echo "$INITIAL_VERSION" >"$d/app/VERSION"
  if [ "$node" = node-a ]; then
    printf 'app.name=ha-lab\napp.port=%s\ndb.host=%s\n' "$APP_PORT" "$VIP" >"$d/config/app.properties"
  fi
  cp "$LAB_DIR/root.key" "$d/keys/root.key"
  chmod 600 "$d/keys/root.key"
  local nodebin
  nodebin="$(node_bin)"
  cat >"$d/systemd/$APP_UNIT.json" <<EOF
{
  "exec": ["$nodebin", "$LAB_HOME/app-standin.mjs", "--ha-lab=$LAB_DIR"],
  "env": {
    "LAB_NODE": "$node",
    "HOST": "0.0.0.0",
    "PORT": "$APP_PORT",
    "JAR_FILE": "$d/app/app.jar",
    "VERSION_FILE": "$d/app/VERSION"
  },
  "cwd": "$d/app",
  "stopTimeoutMs": 3000
}
EOF
  local peer
  peer="$(peer_of "$node")"
  cat >"$d/systemd/$SYNC_UNIT.json" <<EOF
{
  "exec": ["/bin/bash", "$LAB_HOME/config-sync.sh", "--ha-lab=$LAB_DIR"],
  "env": {
    "SOURCE": "root@$(node_ip "$peer"):$(ndir "$peer")/config/",
    "TARGET": "$d/config/",
    "STATUS_FILE": "$d/rsync/status.json",
    "INTERVAL": "$SYNC_INTERVAL",
    "SSH_KEY": "$LAB_DIR/ssh/id_ed25519",
    "KNOWN_HOSTS": "$LAB_DIR/ssh/known_hosts",
    "VIP": "$VIP"
  },
  "cwd": "$d",
  "stopTimeoutMs": 3000
}
EOF
  write_agent_config "$node" >"$d/agent.json"
}

# The node agent's configuration (apps/ha-orchestrator/src/agent/config.ts; unknown fields are refused).
# The orchestrator calls from the root namespace (ROOT_IP); the nodes may call each other.
write_agent_config() {
  local node=$1 d ip
  d="$(ndir "$node")"
  ip="$(node_ip "$node")"
  cat <<EOF
{
  "nodeId": "$node",
  "allowedCallers": ["$ROOT_IP", "$(node_ip node-a)", "$(node_ip node-b)"],
  "allowLocal": true,
  "stagingDir": "$d/staging",
  "backupDir": "$d/backups",
  "jar": { "path": "$d/app/app.jar", "versionFile": "$d/app/VERSION" },
  "configDir": "$d/config",
  "rootKeyPath": "$d/keys/root.key",
  "services": [
    { "name": "app", "unit": "$APP_UNIT", "port": $APP_PORT, "healthUrl": "http://$ip:$APP_PORT/health" }
  ],
  "systemctl": {
    "command": "$FAKES_DIR/systemctl",
    "env": {
      "FAKE_SYSTEMD_DIR": "$d/systemd",
      "PATH": "$(dirname "$(node_bin)"):/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    }
  },
  "keepalived": {
    "configFile": "$d/keepalived/keepalived.conf",
    "pidFile": "$d/keepalived/keepalived.pid",
    "vip": "$VIP",
    "interface": "eth0"
  },
  "rsync": { "unit": "$SYNC_UNIT", "statusFile": "$d/rsync/status.json" },
  "database": {
    "kind": "postgresql",
    "client": ["$PG_BIN/psql"],
    "dump": ["$PG_BIN/pg_dump"],
    "restore": ["$PG_BIN/pg_restore"],
    "ctl": ["runuser", "-u", "postgres", "--", "$PG_BIN/pg_ctl", "-D", "$d/pg/data", "-l", "$d/logs/postgres.log"],
    "dataDir": "$d/pg/data",
    "controldata": ["runuser", "-u", "postgres", "--", "$PG_BIN/pg_controldata"],
    "rewind": ["runuser", "-u", "postgres", "--", "$PG_BIN/pg_rewind"],
    "host": "$ip",
    "port": $PG_PORT,
    "user": "postgres",
    "dbname": "app"
  },
  "http": { "healthUrl": "http://$ip:$APP_PORT/health" }
}
EOF
}

# Runs the fake systemctl inside a node's namespace, as the agent does through sshd.
node_systemctl() {
  local node=$1
  shift
  ip netns exec "$node" env PATH="$FAKES_DIR:$(dirname "$(node_bin)"):$PATH" \
    FAKE_SYSTEMD_DIR="$(ndir "$node")/systemd" systemctl "$@"
}

# Output first, then match: `ip | grep -q` under pipefail fails when grep exits before ip is done.
holds_vip() {
  local addresses
  addresses="$(ip -n "$1" -o addr show dev eth0 2>/dev/null)" || return 1
  [[ "$addresses" == *" $VIP/"* ]]
}

wait_until() {
  local what=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    [ $SECONDS -lt $deadline ] || die "$EXIT_FAILED" "timed out after ${timeout}s waiting for $what (logs in $LAB_DIR/*/logs)"
    sleep 0.05
  done
}

ssh_ready() {
  ssh -i "$LAB_DIR/ssh/id_ed25519" -o UserKnownHostsFile="$LAB_DIR/ssh/known_hosts" \
    -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=2 "root@$(node_ip "$1")" true 2>/dev/null
}
vip_on_node_a_only() { holds_vip node-a && ! holds_vip node-b; }
replication_streaming() {
  [ "$(pg psql -h "$(ndir node-a)/pg/sock" -U postgres -qAt \
    -c "select state from pg_stat_replication where application_name = 'node-b'" 2>/dev/null)" = streaming ]
}
app_answers() { (exec 3<>"/dev/tcp/$1/$APP_PORT") 2>/dev/null; }
synced_once() { [ -s "$(ndir node-b)/rsync/status.json" ]; }

write_lab_json() {
  local nodebin
  nodebin="$(node_bin)"
  cat >"$LAB_DIR/lab.json.tmp" <<EOF
{
  "dir": "$LAB_DIR",
  "vip": "$VIP",
  "prefixLength": $SUBNET_PREFIX,
  "rootIp": "$ROOT_IP",
  "advertInt": $ADVERT_INT,
  "syncIntervalS": $SYNC_INTERVAL,
  "postgres": $([ "$LAB_POSTGRES" = 1 ] && echo true || echo false),
  "appPort": $APP_PORT,
  "pgPort": $PG_PORT,
  "pgBin": "$PG_BIN",
  "appUnit": "$APP_UNIT",
  "syncUnit": "$SYNC_UNIT",
  "initialVersion": "$INITIAL_VERSION",
  "ssh": {
    "user": "root",
    "port": 22,
    "privateKey": "$LAB_DIR/ssh/id_ed25519",
    "publicKey": "$LAB_DIR/ssh/id_ed25519.pub",
    "knownHosts": "$LAB_DIR/ssh/known_hosts"
  },
  "agent": { "node": "$nodebin", "script": "$AGENT_JS" },
  "fakesDir": "$FAKES_DIR",
  "nodes": [
$(for node in "${NODES[@]}"; do
    d="$(ndir "$node")"
    sep=','
    [ "$node" = node-b ] && sep=''
    cat <<NODE
    {
      "id": "$node",
      "ip": "$(node_ip "$node")",
      "namespace": "$node",
      "dir": "$d",
      "agentConfig": "$d/agent.json",
      "keepalivedConfig": "$d/keepalived/keepalived.conf",
      "keepalivedPidFile": "$d/keepalived/keepalived.pid",
      "initialPriority": $(initial_priority "$node"),
      "systemdDir": "$d/systemd",
      "configDir": "$d/config",
      "rootKey": "$d/keys/root.key",
      "jarFile": "$d/app/app.jar",
      "versionFile": "$d/app/VERSION",
      "rsyncStatusFile": "$d/rsync/status.json",
      "pgDataDir": "$d/pg/data",
      "pgSocketDir": "$d/pg/sock",
      "logsDir": "$d/logs"
    }$sep
NODE
  done)
  ]
}
EOF
  mv "$LAB_DIR/lab.json.tmp" "$LAB_DIR/lab.json"
}

up() {
  check
  if [ "${1:-}" != --fresh ] && [ "$(status_code)" = 0 ] && [ "$(state_value ADVERT_INT)" = "$ADVERT_INT" ] &&
    [ "$(state_value LAB_POSTGRES)" = "$LAB_POSTGRES" ]; then
    log "already up in $LAB_DIR (advert_int $ADVERT_INT)"
    return 0
  fi
  down
  local started=$SECONDS
  mkdir -p "$LAB_DIR"
  chmod 755 "$LAB_DIR"
  : >"$LAB_DIR/.ha-lab"
  head -c 32 /dev/urandom | base64 >"$LAB_DIR/root.key"
  chmod 600 "$LAB_DIR/root.key"
  local node
  for node in "${NODES[@]}"; do
    mkdir -p "$(ndir "$node")/logs" "$(ndir "$node")/keepalived"
    chmod 755 "$(ndir "$node")"
  done
  build_network
  build_ssh
  for node in "${NODES[@]}"; do
    write_keepalived_config "$node" "$(initial_priority "$node")" "$(ndir "$node")/keepalived/keepalived.conf"
    build_node_files "$node"
    start_sshd "$node"
  done
  # node-a first: it must be MASTER once the lab is up, not after a preemption.
  start_keepalived node-a
  if [ "$LAB_POSTGRES" = 1 ]; then build_postgres; fi
  for node in "${NODES[@]}"; do
    node_systemctl "$node" start "$APP_UNIT"
  done
  wait_until "keepalived on node-a to take the VIP" 15 holds_vip node-a
  start_keepalived node-b
  node_systemctl node-b start "$SYNC_UNIT"
  for node in "${NODES[@]}"; do
    wait_until "sshd on $node" 10 ssh_ready "$node"
    wait_until "the app on $node" 10 app_answers "$(node_ip "$node")"
  done
  if [ "$LAB_POSTGRES" = 1 ]; then wait_until "streaming replication to node-b" 15 replication_streaming; fi
  wait_until "the first config sync on node-b" 15 synced_once
  wait_until "node-b's keepalived to settle as BACKUP" 10 keepalived_running node-b
  vip_on_node_a_only || die "$EXIT_FAILED" "VIP is not on node-a alone (node-a: $(holds_vip node-a && echo has it || echo no), node-b: $(holds_vip node-b && echo has it || echo no); logs in $LAB_DIR/*/logs)"
  printf 'ADVERT_INT=%s\nLAB_POSTGRES=%s\nSYNC_INTERVAL=%s\n' "$ADVERT_INT" "$LAB_POSTGRES" "$SYNC_INTERVAL" \
    >"$LAB_DIR/lab.env"
  write_lab_json
  log "up in $((SECONDS - started))s: $LAB_DIR, VIP $VIP on node-a, advert_int $ADVERT_INT"
}

# --- status -----------------------------------------------------------------------------------

state_value() { sed -n "s/^$1=//p" "$LAB_DIR/lab.env" 2>/dev/null; }
keepalived_running() { pid_from_file "$(ndir "$1")/keepalived/keepalived.pid" >/dev/null; }
sshd_running() { pid_from_file "$(ndir "$1")/sshd/sshd.pid" >/dev/null; }
pg_running() { pid_from_file "$(ndir "$1")/pg/data/postmaster.pid" >/dev/null; }
unit_active() { node_systemctl "$1" is-active "$2" >/dev/null 2>&1; }

# 0 everything runs, 7 nothing of the lab exists, 6 anything in between.
status_code() {
  local ok=0 any=0 node
  [ -f "$LAB_DIR/lab.json" ] && any=1
  [ -n "$(lab_pids | head -n1)" ] && any=1
  for ns in "${NAMESPACES[@]}"; do [ -e "/run/netns/$ns" ] && any=1; done
  ip link show ha-root >/dev/null 2>&1 && any=1
  if [ $any = 0 ]; then
    echo "$EXIT_DOWN"
    return 0
  fi
  [ -f "$LAB_DIR/lab.json" ] && ip link show ha-root >/dev/null 2>&1 || ok=1
  for node in "${NODES[@]}"; do
    [ -e "/run/netns/$node" ] || ok=1
    [ $ok = 0 ] || break
    sshd_running "$node" || ok=1
    keepalived_running "$node" || ok=1
    unit_active "$node" "$APP_UNIT" || ok=1
    if [ "$(state_value LAB_POSTGRES)" = 1 ]; then pg_running "$node" || ok=1; fi
  done
  [ $ok = 0 ] && { unit_active node-b "$SYNC_UNIT" || ok=1; }
  if [ $ok = 0 ]; then echo 0; else echo "$EXIT_DEGRADED"; fi
}

status() {
  local code node
  code="$(status_code)"
  if [ "$code" = "$EXIT_DOWN" ]; then
    echo "lab: down"
    return "$EXIT_DOWN"
  fi
  echo "lab: $([ "$code" = 0 ] && echo up || echo degraded) ($LAB_DIR, advert_int $(state_value ADVERT_INT))"
  for node in "${NODES[@]}"; do
    if [ ! -e "/run/netns/$node" ]; then
      echo "  $node: no namespace"
      continue
    fi
    local prio vip="" pgrole="-"
    prio="$(sed -n 's/^ *priority \([0-9]*\).*/\1/p' "$(ndir "$node")/keepalived/keepalived.conf" 2>/dev/null)"
    holds_vip "$node" && vip=" VIP"
    if pg_running "$node"; then
      pgrole="$(pg psql -h "$(ndir "$node")/pg/sock" -U postgres -qAt \
        -c "select case when pg_is_in_recovery() then 'standby' else 'primary' end" 2>/dev/null || echo '?')"
    fi
    printf '  %s %s: sshd %s, keepalived %s (priority %s)%s, postgres %s, app %s, config-sync %s\n' \
      "$node" "$(node_ip "$node")" \
      "$(sshd_running "$node" && echo up || echo down)" \
      "$(keepalived_running "$node" && echo up || echo down)" "${prio:-?}" "$vip" "$pgrole" \
      "$(unit_active "$node" "$APP_UNIT" && echo active || echo inactive)" \
      "$(unit_active "$node" "$SYNC_UNIT" && echo active || echo inactive)"
  done
  return "$code"
}

# --- helpers for people -----------------------------------------------------------------------

set_priority() {
  local node=$1 priority=$2 conf pid
  [[ "$priority" =~ ^[0-9]+$ ]] && [ "$priority" -ge 1 ] && [ "$priority" -le 254 ] ||
    die "$EXIT_USAGE" "priority must be 1..254"
  conf="$(ndir "$node")/keepalived/keepalived.conf"
  [ -f "$conf" ] || die "$EXIT_FAILED" "$node has no keepalived config (is the lab up?)"
  sed "s/^\( *priority \)[0-9]*/\1$priority/" "$conf" >"$conf.tmp" && mv "$conf.tmp" "$conf"
  pid="$(pid_from_file "$(ndir "$node")/keepalived/keepalived.pid")" ||
    die "$EXIT_FAILED" "keepalived on $node is not running"
  kill -HUP "$pid"
  log "$node priority $priority (keepalived $pid reloaded)"
}

lab_ssh() {
  local node=$1
  shift
  exec ssh -i "$LAB_DIR/ssh/id_ed25519" -o UserKnownHostsFile="$LAB_DIR/ssh/known_hosts" \
    -o StrictHostKeyChecking=yes "root@$(node_ip "$node")" "$@"
}

case "${1:-}" in
  check) check && log "prerequisites present" ;;
  up) up "${2:-}" ;;
  down)
    [ "$(id -u)" = 0 ] || die "$EXIT_NOT_ROOT" "must run as root"
    down
    log "down"
    ;;
  status) status ;;
  priority)
    [ $# -eq 3 ] || die "$EXIT_USAGE" "usage: lab.sh priority NODE PRIORITY"
    node_ip "$2" >/dev/null
    set_priority "$2" "$3"
    ;;
  ssh)
    [ $# -ge 2 ] || die "$EXIT_USAGE" "usage: lab.sh ssh NODE [COMMAND...]"
    node_ip "$2" >/dev/null
    lab_ssh "${@:2}"
    ;;
  *) die "$EXIT_USAGE" "usage: lab.sh check|up [--fresh]|down|status|priority NODE PRIORITY|ssh NODE [COMMAND...]" ;;
esac
