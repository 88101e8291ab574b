#!/usr/bin/env bash
# Makes sure the local PostgreSQL 15 and Redis 7 the tests use are answering; starts them when not.
set -euo pipefail

PG_HOST=127.0.0.1 PG_PORT=5432 REDIS_PORT=6379

pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -U postgres 2>/dev/null; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]; }

wait_for() {
  local what=$1 check=$2
  for _ in $(seq 1 60); do
    if $check; then echo "$what is up"; return 0; fi
    sleep 0.5
  done
  echo "error: $what did not come up within 30 s" >&2
  return 1
}

if pg_up; then
  echo "PostgreSQL is up"
else
  echo "PostgreSQL is not answering; starting it"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  wait_for PostgreSQL pg_up
fi

if redis_up; then
  echo "Redis is up"
else
  echo "Redis is not answering; starting it"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for Redis redis_up
fi
