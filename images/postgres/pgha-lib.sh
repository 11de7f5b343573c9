# Shared shell functions for the pgha PostgreSQL image (sourced, not run).
# Why a library: the entrypoint (at start) and pgha-ctl (during failover, via
# `docker exec`) must agree on file locations, slot names and how a node
# follows its upstream, so both read them from here.

PGHA_DATA_ROOT=${PGHA_DATA_ROOT:-/var/lib/postgresql/data}
PGDATA=${PGDATA:-$PGHA_DATA_ROOT/pgdata}
PGHA_NODE=${PGHA_NODE:?PGHA_NODE (this node name) is required}
PGHA_NODES=${PGHA_NODES:-$PGHA_NODE}
PGHA_BOOTSTRAP_PRIMARY=${PGHA_BOOTSTRAP_PRIMARY:-${PGHA_NODES%% *}}
PGHA_DB=${PGHA_DB:-pgha}
PGHA_APP_USER=${PGHA_APP_USER:-pgha}
PGHA_PORT=${PGHA_PORT:-5432}
PGHA_ROLE_PORT=${PGHA_ROLE_PORT:-8008}
DESIRED_FILE=$PGHA_DATA_ROOT/pgha.desired
# Every node of the cluster, one line, written by the failover resource at each up: the
# membership lives on the volume, not in the container's env, so adding a node never
# replaces the others.
MEMBERS_FILE=$PGHA_DATA_ROOT/pgha.members
SOCKET_DIR=/var/run/postgresql
# On the socket tmpfs, not the volume: a volume kept by pgha:retainData outlives the stack,
# and the replication password must not outlive it with it.
PASSFILE=$SOCKET_DIR/pgha.pgpass

log() { echo "pgha[$PGHA_NODE]: $*" >&2; }

slot_name() { echo "${1//-/_}"; }

local_sql() { psql -h "$SOCKET_DIR" -p "$PGHA_PORT" -U postgres -d postgres -XAtq -v ON_ERROR_STOP=1 "$@"; }

is_running() { pg_isready -q -h "$SOCKET_DIR" -p "$PGHA_PORT"; }

# "primary", "replica" or "down", as PostgreSQL itself reports it.
current_role() {
  local r
  r=$(local_sql -c 'select pg_is_in_recovery()' 2>/dev/null) || { echo down; return; }
  if [ "$r" = t ]; then echo replica; else echo primary; fi
}

# The desired role comes from the file the failover resource writes; before
# any failover it follows from the bootstrap primary named in the environment.
desired() {
  if [ -s "$DESIRED_FILE" ]; then
    cat "$DESIRED_FILE"
  elif [ "$PGHA_NODE" = "$PGHA_BOOTSTRAP_PRIMARY" ]; then
    echo primary
  else
    echo "replica $PGHA_BOOTSTRAP_PRIMARY"
  fi
}

write_desired() {
  printf '%s\n' "$*" >"$DESIRED_FILE.tmp"
  mv -f "$DESIRED_FILE.tmp" "$DESIRED_FILE"
}

# Passwords live in a libpq passfile on the volume, never in conninfo strings
# that pg_stat_wal_receiver or the logs could show.
write_passfile() {
  umask 077
  # Volumes from before the passfile moved to tmpfs still hold a copy.
  rm -f "$PGHA_DATA_ROOT/.pgpass"
  {
    echo "*:*:*:replicator:${PGHA_REPLICATION_PASSWORD:?PGHA_REPLICATION_PASSWORD is required}"
    echo "*:*:*:rewinder:${PGHA_REPLICATION_PASSWORD}"
  } >"$PASSFILE.tmp"
  mv -f "$PASSFILE.tmp" "$PASSFILE"
}

write_upstream() {
  local upstream=$1
  cat >"$PGDATA/pgha-upstream.conf" <<CONF
# Written by pgha: this node streams from $upstream.
primary_conninfo = 'host=$upstream port=$PGHA_PORT user=replicator passfile=$PASSFILE application_name=$(slot_name "$PGHA_NODE") connect_timeout=2'
primary_slot_name = '$(slot_name "$PGHA_NODE")'
CONF
  touch "$PGDATA/standby.signal"
}

write_hba() {
  local cidr=${PGHA_ALLOWED_CIDR:?PGHA_ALLOWED_CIDR (the stack network) is required}
  cat >"$PGDATA/pg_hba.conf" <<HBA
# Written by pgha at every start. Superuser only over the local socket;
# everything else only from the stack network, with SCRAM.
local   all          postgres                    peer
HBA
  # The host reaches the stack only through HAProxy's published ports; its own
  # address on the bridge (the gateway) must not bypass HAProxy.
  if [ -n "${PGHA_HOST_GATEWAY:-}" ]; then
    echo "host    all          all          ${PGHA_HOST_GATEWAY}/32   reject" >>"$PGDATA/pg_hba.conf"
  fi
  cat >>"$PGDATA/pg_hba.conf" <<HBA
host    replication  replicator   $cidr          scram-sha-256
host    postgres     rewinder     $cidr          scram-sha-256
host    $PGHA_DB     $PGHA_APP_USER   $cidr      scram-sha-256
host    $PGHA_DB     pgha_monitor $cidr          scram-sha-256
HBA
}

# 0 when $1's role endpoint says it is the writable primary.
upstream_is_primary() {
  python3 - "$1" "$PGHA_ROLE_PORT" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(f"http://{sys.argv[1]}:{sys.argv[2]}/primary", timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

# Waits until the upstream is the primary and prints its name. The desired
# role is re-read on every try: a failover while this node waits (its old
# upstream may be the node that died) points it at the new primary.
wait_for_primary() {
  local upstream=$1 n=0 want next
  until upstream_is_primary "$upstream"; do
    read -r want next <<<"$(desired)"
    if [ "$want" = replica ] && [ -n "$next" ] && [ "$next" != "$upstream" ]; then
      log "desired upstream changed from $upstream to $next"
      upstream=$next
      continue
    fi
    [ $((n % 15)) -eq 0 ] && log "waiting for $upstream to be the primary"
    n=$((n + 1))
    sleep 1
  done
  echo "$upstream"
}

clone_from() {
  local upstream=$1 slot
  slot=$(slot_name "$PGHA_NODE")
  upstream=$(wait_for_primary "$upstream")
  log "cloning from $upstream with pg_basebackup (slot $slot)"
  local common=(-h "$upstream" -p "$PGHA_PORT" -U replicator -D "$PGDATA" -X stream -c fast -w)
  # The slot may already exist (the primary creates one per peer): then reuse it.
  PGPASSFILE=$PASSFILE pg_basebackup "${common[@]}" -C -S "$slot" 2>/dev/null \
    || PGPASSFILE=$PASSFILE pg_basebackup "${common[@]}" -S "$slot"
  write_upstream "$upstream"
}

# Turns a former primary into a replica of $1 without losing its identity:
# pg_rewind where the timelines allow it, a fresh clone where they do not.
# The old data directory is kept aside, never silently deleted.
rejoin_as_replica() {
  local upstream=$1
  upstream=$(wait_for_primary "$upstream")
  log "rejoining as a replica of $upstream with pg_rewind"
  if PGPASSFILE=$PASSFILE pg_rewind --target-pgdata="$PGDATA" \
      --source-server="host=$upstream port=$PGHA_PORT user=rewinder dbname=postgres connect_timeout=3"; then
    write_upstream "$upstream"
    return
  fi
  log "pg_rewind failed; keeping the old data in pgdata.before-reclone and cloning again"
  rm -rf "$PGHA_DATA_ROOT/pgdata.before-reclone"
  mv "$PGDATA" "$PGHA_DATA_ROOT/pgdata.before-reclone"
  clone_from "$upstream"
}

members() {
  if [ -s "$MEMBERS_FILE" ]; then cat "$MEMBERS_FILE"; else echo "$PGHA_NODES"; fi
}

# Physical slots for every other node keep the WAL each replica still needs;
# max_slot_wal_keep_size caps what a dead replica can hold back.
ensure_slots() {
  local peer
  for peer in $(members); do
    [ "$peer" = "$PGHA_NODE" ] && continue
    local_sql -c "select pg_create_physical_replication_slot('$(slot_name "$peer")')
                  where not exists (select 1 from pg_replication_slots
                                    where slot_name = '$(slot_name "$peer")')" >/dev/null
  done
}

# Drops the inactive physical slots of nodes no longer in the membership (a removed
# node's slot would otherwise hold WAL back); an active one goes once its replica stopped.
drop_stale_slots() {
  local keep="" peer
  for peer in $(members); do keep="$keep,'$(slot_name "$peer")'"; done
  local_sql -c "select pg_drop_replication_slot(slot_name) from pg_replication_slots
                where slot_type = 'physical' and not active
                  and slot_name not in (${keep#,})" >/dev/null
}

# --- pgBackRest (pgha:backup) -----------------------------------------------------------
# The config infra/backup_cfg.py rendered (PGHA_PGBACKREST_CFG), the cipher passphrase
# (PGHA_BACKUP_PASSPHRASE) and this container's PEMs from the stack CA (PGHA_TLS_CA,
# PGHA_TLS_CERT, PGHA_TLS_KEY) arrive as env, since Docker cannot upload files into a
# container with a read-only root filesystem; they are written to the /run/pgbackrest
# tmpfs, readable by postgres only, and never reach a volume. The passphrase goes into the
# file, not into pgBackRest's own PGBACKREST_* env, which would override every config
# file: a restore reads the source stack's repository with that stack's passphrase.
PGBACKREST_RUN=/run/pgbackrest
PGBACKREST_CONF=$PGBACKREST_RUN/pgbackrest.conf

backup_enabled() { [ -n "${PGHA_PGBACKREST_CFG:-}" ]; }

# with_passphrase PASSPHRASE CONFIG: CONFIG with `repo1-cipher-pass` under [global]
# (builtins only: the passphrase never becomes a process argument).
with_passphrase() {
  local line
  while IFS= read -r line; do
    printf '%s\n' "$line"
    if [ "$line" = "[global]" ]; then printf 'repo1-cipher-pass=%s\n' "$1"; fi
  done <<<"$2"
}

write_pgbackrest_files() {
  ( umask 077
    with_passphrase "${PGHA_BACKUP_PASSPHRASE:?PGHA_BACKUP_PASSPHRASE is required with pgha:backup}" \
      "$PGHA_PGBACKREST_CFG" >"$PGBACKREST_CONF.tmp"
    printf '%s\n' "${PGHA_TLS_CA:?PGHA_TLS_CA is required with pgha:backup}" >"$PGBACKREST_RUN/ca.crt"
    printf '%s\n' "${PGHA_TLS_CERT:?PGHA_TLS_CERT is required with pgha:backup}" >"$PGBACKREST_RUN/tls.crt"
    printf '%s\n' "${PGHA_TLS_KEY:?PGHA_TLS_KEY is required with pgha:backup}" >"$PGBACKREST_RUN/tls.key"
    mv -f "$PGBACKREST_CONF.tmp" "$PGBACKREST_CONF" )
}

# pgBackRest's TLS server: the repository container reaches this node through it to run
# backups (and the nodes reach the repository through the repository's). It restarts if
# it dies, so one crash does not stop backups until the container is replaced.
start_pgbackrest_server() {
  ( while true; do
      pgbackrest --config="$PGBACKREST_CONF" server || true
      sleep 1
    done ) &
}


# --- Restore (pgha:restoreFrom) ---------------------------------------------------------
# The bootstrap node of a restored stack fills its empty data directory from the source
# stack's repository (mounted read-only) instead of running initdb. RESTORING marks a
# restore that has not finished: the health check fails while it exists, so nothing
# (ClusterRole's promote, replicas' clones) touches the node before recovery reached its
# target, and a restore killed half-way is started over rather than taken for a cluster.
RESTORING=$PGHA_DATA_ROOT/pgha.restoring
RESTORED=$PGHA_DATA_ROOT/pgha.restored
RESTORE_CONF=$PGBACKREST_RUN/restore.conf

# The source repository's config, at every start of a restoring node: the tmpfs is empty
# after a restart, and a recovery that resumes fetches WAL with it.
write_restore_conf() {
  ( umask 077
    with_passphrase "${PGHA_RESTORE_PASSPHRASE:?PGHA_RESTORE_PASSPHRASE is required}" \
      "${PGHA_RESTORE_CFG:?PGHA_RESTORE_CFG is required}" >"$RESTORE_CONF" )
}

restore_primary() {
  local target=${PGHA_RESTORE_TARGET:?PGHA_RESTORE_TARGET is required}
  echo "$target" >"$RESTORING"
  rm -rf "$PGDATA"
  mkdir -m 0700 -p "$PGDATA"
  local opts=(--type=default)
  if [ "$target" != latest ]; then
    opts=(--type=time "--target=$target" --target-action=promote)
  fi
  log "restoring from the source repository (target: $target)"
  # WAL for the recovery comes from the same source repository.
  pgbackrest --config="$RESTORE_CONF" --stanza=pgha "${opts[@]}" \
    "--recovery-option=restore_command=pgbackrest --config=$RESTORE_CONF --stanza=pgha archive-get %f \"%p\"" \
    restore
  # The files are all in place: from here a restart resumes the recovery.
  echo files >>"$RESTORING"
}

# After the restored cluster promoted: this stack's passwords (the restored roles carry
# the source stack's), no more recovery settings (replicas copy postgresql.auto.conf),
# and where recovery ended, for the stack's outputs.
finish_restore() {
  until [ "$(current_role)" = primary ]; do sleep 1; done
  local_sql -v app="$PGHA_APP_USER" <<'SQL'
\getenv app_pw PGHA_APP_PASSWORD
\getenv repl_pw PGHA_REPLICATION_PASSWORD
ALTER ROLE replicator PASSWORD :'repl_pw';
ALTER ROLE rewinder PASSWORD :'repl_pw';
ALTER ROLE :"app" PASSWORD :'app_pw';
ALTER SYSTEM RESET restore_command;
ALTER SYSTEM RESET recovery_target_time;
ALTER SYSTEM RESET recovery_target_action;
SELECT pg_reload_conf();
CHECKPOINT;
SQL
  local tli history lsn
  tli=$(local_sql -c "select timeline_id from pg_control_checkpoint()")
  history=$PGDATA/pg_wal/$(printf '%08X' "$tli").history
  # The history file's last entry: the previous timeline and the LSN it ended at.
  lsn=$(awk 'NF { lsn = $2 } END { print lsn }' "$history" 2>/dev/null || true)
  printf '{"target": "%s", "timeline": %s, "lsn": "%s"}\n' \
    "$(head -n 1 "$RESTORING")" "$tli" "${lsn:-}" >"$RESTORED.tmp"
  mv -f "$RESTORED.tmp" "$RESTORED"
  rm -f "$RESTORING"
  log "restore finished: timeline $tli, recovery ended at ${lsn:-?}"
}
