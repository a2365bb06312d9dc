#!/bin/bash
# cfcr etcd backup of a control-plane member (cfcr-etcd-backup.timer, on every member at the
# same times): the member that leads etcd at that moment takes a snapshot, checks it, hands it
# to the cloud hook (cfcr_backup_upload, from /etc/cfcr/backup.sh: on AWS an S3 upload with a
# role that may write snapshots and nothing else) and deletes its copy. The others do nothing,
# so each period yields one snapshot. docs/backups.md.
# Sourcing this file (after lib.sh) defines the steps only; the tests drive them one by one.
set -euo pipefail
umask 077

# etcd_url: this member's etcd, as its own client sees it (the rendered loopback listener).
etcd_url() { printf '%s\n' "${CFCR_BACKUP_ETCD_URL:-https://127.0.0.1:2379}"; }

# etcd_tls: the client TLS options of etcdctl, with the health-check client certificate.
etcd_tls() {
  printf '%s\n' "--cacert=$CFCR_ETCD_PKI_DIR/ca.crt" "--cert=$CFCR_ETCD_PKI_DIR/healthcheck-client.crt" \
    "--key=$CFCR_ETCD_PKI_DIR/healthcheck-client.key"
}

# leader_status: 0 when this member leads etcd, 1 when another does, 2 when etcd does not answer.
# One call to etcd's JSON gateway (maintenance/status of this member).
leader_status() {
  local status me leader
  status=$(curl -fsS --max-time 10 --cacert "$CFCR_ETCD_PKI_DIR/ca.crt" --cert "$CFCR_ETCD_PKI_DIR/healthcheck-client.crt" \
    --key "$CFCR_ETCD_PKI_DIR/healthcheck-client.key" -H 'Content-Type: application/json' -d '{}' \
    "$(etcd_url)/v3/maintenance/status" 2>/dev/null) || return 2
  me=$(sed -n 's/.*"member_id":"\{0,1\}\([0-9]*\).*/\1/p' <<<"$status")
  leader=$(sed -n 's/.*"leader":"\{0,1\}\([0-9]*\).*/\1/p' <<<"$status")
  [ -n "$me" ] && [ -n "$leader" ] && [ "$leader" != 0 ] || return 2
  [ "$me" = "$leader" ] || return 1
}

# run_etcdctl ARGS: etcdctl on the host when it is installed, else the one in the running etcd
# container (registry.k8s.io/etcd ships etcdctl; the data and certificate directories are
# mounted at the same paths there, so paths below them mean the same file on both sides).
run_etcdctl() {
  local id
  if command -v etcdctl >/dev/null 2>&1; then
    etcdctl "$@"
    return
  fi
  id=$(crictl ps --name '^etcd$' --state running -q 2>/dev/null | head -n 1)
  [ -n "$id" ] || { log "no running etcd container on this member"; return 1; }
  crictl exec "$id" etcdctl "$@"
}

# snapshot_save DEST: a consistent snapshot of this member's etcd into DEST (a path below
# the etcd data directory, which the etcd container sees as well).
snapshot_save() {
  local tls=()
  mapfile -t tls < <(etcd_tls)
  run_etcdctl --endpoints="$(etcd_url)" "${tls[@]}" --dial-timeout=10s snapshot save "$1" >/dev/null
}

# snapshot_check FILE: etcd's own integrity check, as `etcdutl snapshot restore` makes it: a
# bbolt database (magic 0xED0CDAED in its first meta page) followed by the SHA-256 of the
# database, which the server appends; `etcdutl snapshot status` too where etcdutl is installed.
snapshot_check() {
  local file=$1 size body trailer magic
  size=$(stat -c %s "$file")
  if [ "$size" -le 4096 ] || [ $((size % 512)) -ne 32 ]; then
    log "snapshot $file: $size bytes is not a bbolt database followed by its SHA-256"
    return 1
  fi
  magic=$(od -An -tx1 -j16 -N4 "$file" | tr -d ' \n')
  if [ "$magic" != edda0ced ]; then
    log "snapshot $file: no bbolt magic (found $magic)"
    return 1
  fi
  body=$(head -c $((size - 32)) "$file" | sha256sum | cut -d' ' -f1)
  trailer=$(tail -c 32 "$file" | od -An -vtx1 | tr -d ' \n')
  if [ "$body" != "$trailer" ]; then
    log "snapshot $file: SHA-256 mismatch (database $body, recorded $trailer)"
    return 1
  fi
  if command -v etcdutl >/dev/null 2>&1; then
    etcdutl snapshot status "$file" -w simple >&2 || return 1
  fi
}

# backup_once: snapshot, check, upload through the cloud hook, delete the local copy. The
# object is <prefix>/<UTC time>-<member>.db; the hook knows the bucket and the identity.
backup_once() {
  local work stamp key
  work=$(mktemp -d "$CFCR_ETCD_DATA_DIR/.cfcr-backup.XXXXXX")
  # shellcheck disable=SC2064  # expand now: the trap must remove this run's directory
  trap "rm -rf '$work'" EXIT
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  key="$CFCR_BACKUP_PREFIX/$stamp-$CFCR_MEMBER.db"
  snapshot_save "$work/snapshot.db" || die "etcd snapshot failed"
  snapshot_check "$work/snapshot.db" || die "the snapshot failed its integrity check: not uploaded"
  cfcr_backup_upload "$work/snapshot.db" "$key" || die "uploading $key failed"
  log "etcd snapshot stored as $key ($(stat -c %s "$work/snapshot.db") bytes)"
  rm -rf "$work"
}

main() {
  # shellcheck source=/dev/null
  . /usr/local/lib/cfcr/lib.sh
  load_node_facts
  # shellcheck source=/dev/null
  . "$CFCR_BACKUP_HOOK"
  require_bootstrapped "no etcd to back up"
  local status=0
  leader_status || status=$?
  case "$status" in
    0) backup_once ;;
    1) log "not the etcd leader: the leader takes this period's snapshot" ;;
    *) die "etcd on this member does not answer $(etcd_url): no snapshot" ;;
  esac
}

# Run when executed; sourcing defines the steps only.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
