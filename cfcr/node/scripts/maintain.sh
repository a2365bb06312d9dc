#!/bin/bash
# cfcr daily maintenance of a control-plane member (cfcr-maintain.timer):
#  1. installs certificates that `pulumi up` renewed in the secret store,
#  2. renews kubeadm-managed leaves and kubeconfigs near expiry (kubeadm certs renew),
#  3. re-signs the etcd leaves near expiry with the etcd CA (kubeadm leaves external
#     etcd's certificates alone),
#  4. restarts only the static pods whose files changed,
#  5. where the cloud cannot rotate join tokens, refreshes the stored one (72h TTL).
# So a cluster outlives its one-year leaves even when nobody runs `pulumi up`.
set -euo pipefail
umask 077

# shellcheck source=/dev/null
. /usr/local/lib/cfcr/lib.sh
load_node_facts

require_bootstrapped "nothing to maintain"

exec 9>/run/cfcr-bootstrap.lock
flock 9

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
window=$((CFCR_RENEW_BEFORE_DAYS * 86400))
declare -A restart=()

expiring() { ! openssl x509 -checkend "$window" -noout -in "$1" >/dev/null 2>&1; }
cert_end() { date -d "$(openssl x509 -enddate -noout -in "$1" | cut -d= -f2)" +%s; }

affects() {
  case "$1" in
    "$PKI"/etcd/ca.*) restart[etcd]=1 restart[kube-apiserver]=1 ;;
    "$PKI"/etcd/*) restart[etcd]=1 ;;
    "$PKI"/apiserver-etcd-client.*) restart[kube-apiserver]=1 ;;
    "$PKI"/ca.* | "$PKI"/sa.*) restart[kube-apiserver]=1 restart[kube-controller-manager]=1 ;;
    "$CFCR_ENCRYPTION_KEY_FILE") restart[kube-apiserver]=1 ;;
    "$PKI"/*) restart[kube-apiserver]=1 ;;
  esac
}

# --- 1. the secret store's versions ----------------------------------------------
declare -A staged=()
fetched=1
if ! fetch_all_secrets "$stage"; then
  log "the secret store did not answer: keeping the installed files, renewing locally"
  fetched=0
fi
n=0
for entry in "${CFCR_SECRETS[@]}"; do
  [ "$fetched" = 1 ] || break
  IFS='|' read -r _ path mode <<<"$entry"
  n=$((n + 1))
  staged[$path]="$stage/$n|$mode"
done

install_staged() {
  local src mode
  IFS='|' read -r src mode <<<"${staged[$1]}"
  write_atomic "$1" "$mode" <"$src"
  affects "$1"
}

for path in "${!staged[@]}"; do
  src=${staged[$path]%%|*}
  if [ -f "$path" ] && cmp -s "$src" "$path"; then
    continue
  fi
  case "$path" in
    *.crt)
      if [[ $path != *ca.crt ]] && [ -f "$path" ] && [ "$(cert_end "$src")" -le "$(cert_end "$path")" ]; then
        continue # the certificate here is as new or newer (renewed on this node)
      fi
      log "installing $path from the secret store"
      install_staged "$path"
      if [ -n "${staged[${path%.crt}.key]:-}" ]; then install_staged "${path%.crt}.key"; fi
      ;;
    *.key)
      # keys travel with their certificate; a key without one (sa.key) stands alone
      if [ -z "${staged[${path%.key}.crt]:-}" ]; then
        log "installing $path from the secret store"
        install_staged "$path"
      fi
      ;;
    *)
      log "installing $path from the secret store"
      install_staged "$path"
      ;;
  esac
done

# --- 2. kubeadm-managed leaves and kubeconfigs -------------------------------------
render_template "$CFCR_KUBEADM_TEMPLATE" "$CFCR_KUBEADM_CONFIG"
for name in apiserver apiserver-kubelet-client front-proxy-client; do
  if expiring "$PKI/$name.crt"; then
    log "renewing $name (expires within ${CFCR_RENEW_BEFORE_DAYS}d)"
    kubeadm certs renew "$name" --config "$CFCR_KUBEADM_CONFIG"
    restart[kube-apiserver]=1
  fi
done
for conf in admin.conf super-admin.conf controller-manager.conf scheduler.conf; do
  [ -f "/etc/kubernetes/$conf" ] || continue
  awk '/client-certificate-data:/ { print $2 }' "/etc/kubernetes/$conf" | base64 -d >"$stage/kubeconfig.crt"
  if expiring "$stage/kubeconfig.crt"; then
    log "renewing $conf"
    kubeadm certs renew "$conf" --config "$CFCR_KUBEADM_CONFIG"
    case "$conf" in
      controller-manager.conf) restart[kube-controller-manager]=1 ;;
      scheduler.conf) restart[kube-scheduler]=1 ;;
    esac
  fi
done

# --- 3. etcd leaves, re-signed with the etcd CA keeping key, subject and SANs -------
resign_etcd_leaf() {
  local name=$1 eku=$2 crt="$PKI/$1.crt" key="$PKI/$1.key" base san
  expiring "$crt" || return 0
  log "re-signing $name with the etcd CA (expires within ${CFCR_RENEW_BEFORE_DAYS}d)"
  base="$stage/${name//\//-}"
  san=$(openssl x509 -noout -ext subjectAltName -in "$crt" 2>/dev/null | sed -n '2p' | sed -e 's/IP Address:/IP:/g' -e 's/^[[:space:]]*//')
  {
    echo "basicConstraints = critical, CA:FALSE"
    echo "keyUsage = critical, $CFCR_LEAF_KEY_USAGE"
    echo "extendedKeyUsage = $eku"
    echo "subjectKeyIdentifier = hash"
    echo "authorityKeyIdentifier = keyid"
    if [ -n "$san" ]; then echo "subjectAltName = $san"; fi
  } >"$base.ext"
  openssl x509 -x509toreq -in "$crt" -signkey "$key" -out "$base.csr"
  openssl x509 -req -in "$base.csr" -CA "$PKI/etcd/ca.crt" -CAkey "$PKI/etcd/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$CFCR_LEAF_DAYS" -extfile "$base.ext" -out "$base.crt"
  openssl verify -CAfile "$PKI/etcd/ca.crt" "$base.crt" >/dev/null
  write_atomic "$crt" 0644 <"$base.crt"
  affects "$crt"
}
resign_etcd_leaf etcd/server serverAuth,clientAuth
resign_etcd_leaf etcd/peer serverAuth,clientAuth
resign_etcd_leaf etcd/healthcheck-client clientAuth
resign_etcd_leaf apiserver-etcd-client clientAuth

# --- 4. encryption config (a rotated key) and static pods ---------------------------
render_template "$CFCR_ENCRYPTION_TEMPLATE" "$stage/encryption.yaml"
if ! cmp -s "$stage/encryption.yaml" "$CFCR_ENCRYPTION_CONFIG"; then
  write_atomic "$CFCR_ENCRYPTION_CONFIG" 0600 <"$stage/encryption.yaml"
  restart[kube-apiserver]=1
fi
for component in etcd kube-apiserver kube-controller-manager kube-scheduler; do
  if [ -n "${restart[$component]:-}" ]; then restart_static_pod "$component"; fi
done

# --- 5. bootstrap token: where the cloud cannot rotate it (no join-credentials timer), the
#        stored token is re-applied and its expiry pushed out; elsewhere the
#        join-credentials timer keeps short-lived tokens and this must not revive one.
if [ -z "$CFCR_JOIN_ROTATION" ]; then
  kubeadm init phase bootstrap-token --config "$CFCR_KUBEADM_CONFIG" --kubeconfig /etc/kubernetes/admin.conf >/dev/null
fi
log "maintenance done"
