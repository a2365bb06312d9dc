#!/bin/bash
# cfcr daily maintenance of a control-plane member (cfcr-maintain.timer):
#  1. installs certificates that `pulumi up` renewed in the secret store,
#  2. renews kubeadm-managed leaves and kubeconfigs near expiry (kubeadm certs renew), and
#     the kubeconfigs' and the kubelet's client certificates that the signing CA did not sign
#     (a CA rotation, ROTATION.md step 3); every kubeconfig trusts the whole CA bundle, and so
#     does kube-public/cluster-info (steps 2-4),
#  3. re-signs the etcd leaves near expiry with the etcd CA (kubeadm leaves external
#     etcd's certificates alone),
#  4. restarts only the static pods (and the kubelet) whose files changed,
#  5. where the cloud cannot rotate join tokens, refreshes the stored one (72h TTL).
# So a cluster outlives its one-year leaves even when nobody runs `pulumi up`.
set -euo pipefail
umask 077

# shellcheck source=/dev/null
. /usr/local/lib/cfcr/lib.sh

# The run's state, shared by its steps (main sets the first two):
stage=""  # scratch directory of this run, removed when the script exits
window=0  # CFCR_RENEW_BEFORE_DAYS in seconds: a certificate expiring within it is renewed
declare -A restart=() # what must restart to read changed files: static pod names, "kubelet"
declare -A staged=()  # the secret store's files: destination path -> "staged copy|mode"

expiring() { ! openssl x509 -checkend "$window" -noout -in "$1" >/dev/null 2>&1; }
# signed by the cluster CA that signs now (the first of ca.crt), and still valid
signed_now() { openssl verify -CAfile "$CFCR_SIGNING_CA" "$1" >/dev/null 2>&1; }
cert_end() { date -d "$(openssl x509 -enddate -noout -in "$1" | cut -d= -f2)" +%s; }

# affects FILE: record what reads FILE (a changed file) in restart.
affects() {
  case "$1" in
    "$CFCR_KUBERNETES_DIR"/controller-manager.conf) restart[kube-controller-manager]=1 ;;
    "$CFCR_KUBERNETES_DIR"/scheduler.conf) restart[kube-scheduler]=1 ;;
    "$CFCR_KUBERNETES_DIR"/kubelet.conf | "$CFCR_KUBELET_DIR"/pki/*) restart[kubelet]=1 ;;
    "$CFCR_KUBERNETES_DIR"/*.conf) ;; # admin.conf, super-admin.conf: read by each command
    "$CFCR_ETCD_PKI_DIR"/ca.*) restart[etcd]=1 restart[kube-apiserver]=1 ;;
    "$CFCR_ETCD_PKI_DIR"/*) restart[etcd]=1 ;;
    "$CFCR_PKI_DIR"/apiserver-etcd-client.*) restart[kube-apiserver]=1 ;;
    "$CFCR_PKI_DIR"/ca.* | "$CFCR_PKI_DIR"/sa.*) restart[kube-apiserver]=1 restart[kube-controller-manager]=1 ;;
    "$CFCR_ENCRYPTION_KEY_FILE") restart[kube-apiserver]=1 ;;
    "$CFCR_PKI_DIR"/*) restart[kube-apiserver]=1 ;;
  esac
}

# resign CRT KEY CA CAKEY EKU BASE: BASE.crt, a certificate for KEY with CRT's subject and
# subject alternative names, signed by CA (the first certificate of the file) for CFCR_LEAF_DAYS.
resign() {
  local crt=$1 key=$2 ca=$3 cakey=$4 eku=$5 base=$6 san
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
  openssl x509 -req -in "$base.csr" -CA "$ca" -CAkey "$cakey" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$CFCR_LEAF_DAYS" -extfile "$base.ext" -out "$base.crt"
  openssl verify -CAfile "$ca" "$base.crt" >/dev/null
}

# renew_kubelet_client: the kubelet's client certificate (kubeadm init signed it; the kubelet
# rotates it through a CSR only near its expiry) re-signed by the signing CA, same key and
# subject, when another CA generation signed it (ROTATION.md step 3).
renew_kubelet_client() {
  local conf=$CFCR_KUBERNETES_DIR/kubelet.conf file keyfile user copy new
  local crt=$stage/kubelet-client.crt key=$stage/kubelet-client.key
  [ -f "$conf" ] || return 0
  file=$(kubectl config view --kubeconfig "$conf" --raw -o jsonpath='{.users[0].user.client-certificate}')
  keyfile=$(kubectl config view --kubeconfig "$conf" --raw -o jsonpath='{.users[0].user.client-key}')
  if [ -n "$file" ]; then
    openssl x509 -in "$file" -out "$crt"
    openssl pkey -in "${keyfile:-$file}" -out "$key"
  else
    kubectl config view --kubeconfig "$conf" --raw -o jsonpath='{.users[0].user.client-certificate-data}' | base64 -d >"$crt"
    kubectl config view --kubeconfig "$conf" --raw -o jsonpath='{.users[0].user.client-key-data}' | base64 -d >"$key"
  fi
  if signed_now "$crt"; then return 0; fi
  log "re-signing the kubelet's client certificate with the signing CA (another generation signed it)"
  resign "$crt" "$key" "$CFCR_SIGNING_CA" "$CFCR_PKI_DIR/ca.key" clientAuth "$stage/kubelet-client-new"
  if [ -n "$file" ] && [ "${keyfile:-$file}" = "$file" ]; then
    # the kubelet's own layout: certificate and key in one file, "current" a link to it
    new=$(dirname "$file")/kubelet-client-$(date -u +%Y-%m-%d-%H-%M-%S).pem
    cat "$stage/kubelet-client-new.crt" "$key" | write_atomic "$new" 0600
    ln -sfn "$new" "$file.cfcr"
    mv -Tf "$file.cfcr" "$file"
  elif [ -n "$file" ]; then
    write_atomic "$file" 0644 <"$stage/kubelet-client-new.crt"
  else
    user=$(kubectl config view --kubeconfig "$conf" -o jsonpath='{.users[0].name}')
    copy=$(mktemp)
    cp "$conf" "$copy"
    kubectl config set-credentials "$user" --kubeconfig "$copy" --embed-certs \
      --client-certificate="$stage/kubelet-client-new.crt" --client-key="$key" >/dev/null
    write_atomic "$conf" 0600 <"$copy"
    rm -f "$copy"
  fi
  restart[kubelet]=1
}

# --- 1. the secret store's versions ----------------------------------------------
# stage_store: every secret of this role into the stage, listed in staged; nothing staged
# when the store does not answer (the installed files stay, local renewal goes on).
stage_store() {
  local fetched=1 n=0 entry path mode
  if ! fetch_all_secrets "$stage"; then
    log "the secret store did not answer: keeping the installed files, renewing locally"
    fetched=0
  fi
  for entry in "${CFCR_SECRETS[@]}"; do
    [ "$fetched" = 1 ] || break
    IFS='|' read -r _ path mode <<<"$entry"
    n=$((n + 1))
    staged[$path]="$stage/$n|$mode"
  done
}

install_staged() {
  local src mode
  IFS='|' read -r src mode <<<"${staged[$1]}"
  write_atomic "$1" "$mode" <"$src"
  affects "$1"
}

# install_from_store: each staged file that differs from the installed one, a certificate only
# when it is newer (with its key), a key alone only when no certificate goes with it.
install_from_store() {
  local path src
  stage_store
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
}

# --- 2. kubeadm-managed leaves and kubeconfigs -------------------------------------
renew_kubeadm_managed() {
  local name conf trust_changed changed
  render_template "$CFCR_KUBEADM_TEMPLATE" "$CFCR_KUBEADM_CONFIG"
  for name in apiserver apiserver-kubelet-client front-proxy-client; do
    if expiring "$CFCR_PKI_DIR/$name.crt"; then
      log "renewing $name (expires within ${CFCR_RENEW_BEFORE_DAYS}d)"
      kubeadm certs renew "$name" --config "$CFCR_KUBEADM_CONFIG"
      restart[kube-apiserver]=1
    fi
  done
  if write_signing_ca; then restart[kube-controller-manager]=1; fi # its CSR signer's CA
  for conf in admin.conf super-admin.conf controller-manager.conf scheduler.conf; do
    [ -f "$CFCR_KUBERNETES_DIR/$conf" ] || continue
    awk '/client-certificate-data:/ { print $2 }' "$CFCR_KUBERNETES_DIR/$conf" | base64 -d >"$stage/kubeconfig.crt"
    if expiring "$stage/kubeconfig.crt" || ! signed_now "$stage/kubeconfig.crt"; then
      log "renewing $conf (expires within ${CFCR_RENEW_BEFORE_DAYS}d, or another CA generation signed it)"
      kubeadm certs renew "$conf" --config "$CFCR_KUBEADM_CONFIG"
      affects "$CFCR_KUBERNETES_DIR/$conf"
    fi
  done
  renew_kubelet_client
  trust_changed=$(refresh_ca_trust)
  while read -r changed; do
    if [ -n "$changed" ]; then affects "$changed"; fi
  done <<<"$trust_changed"
}

# --- 3. etcd leaves, re-signed with the etcd CA keeping key, subject and SANs -------
# resign_etcd_leaf NAME EKU: NAME (relative to the PKI directory, without .crt) when it expires
# within the window.
resign_etcd_leaf() {
  local name=$1 eku=$2 crt="$CFCR_PKI_DIR/$1.crt"
  expiring "$crt" || return 0
  log "re-signing $name with the etcd CA (expires within ${CFCR_RENEW_BEFORE_DAYS}d)"
  resign "$crt" "$CFCR_PKI_DIR/$1.key" "$CFCR_ETCD_PKI_DIR/ca.crt" "$CFCR_ETCD_PKI_DIR/ca.key" "$eku" "$stage/${name//\//-}"
  write_atomic "$crt" 0644 <"$stage/${name//\//-}.crt"
  affects "$crt"
}

resign_etcd_leaves() {
  resign_etcd_leaf etcd/server serverAuth,clientAuth
  resign_etcd_leaf etcd/peer serverAuth,clientAuth
  resign_etcd_leaf etcd/healthcheck-client clientAuth
  resign_etcd_leaf apiserver-etcd-client clientAuth
}

# --- 4. encryption config (a rotated key) and static pods ---------------------------
restart_changed() {
  local component
  render_template "$CFCR_ENCRYPTION_TEMPLATE" "$stage/encryption.yaml"
  if ! cmp -s "$stage/encryption.yaml" "$CFCR_ENCRYPTION_CONFIG"; then
    write_atomic "$CFCR_ENCRYPTION_CONFIG" 0600 <"$stage/encryption.yaml"
    restart[kube-apiserver]=1
  fi
  for component in etcd kube-apiserver kube-controller-manager kube-scheduler; do
    if [ -n "${restart[$component]:-}" ]; then restart_static_pod "$component"; fi
  done
  if [ -n "${restart[kubelet]:-}" ]; then restart_kubelet; fi
  # what `kubeadm join` discovers trusts the whole bundle (kubeadm init writes the first CA only)
  refresh_cluster_info || log "could not refresh kube-public/cluster-info; the next run tries again"
}

# --- 5. bootstrap token: where the cloud cannot rotate it (no join-credentials timer), the
#        stored token is re-applied and its expiry pushed out; elsewhere the
#        join-credentials timer keeps short-lived tokens and this must not revive one.
refresh_join_token() {
  if [ -z "$CFCR_JOIN_ROTATION" ]; then
    kubeadm init phase bootstrap-token --config "$CFCR_KUBEADM_CONFIG" --kubeconfig "$CFCR_KUBERNETES_DIR/admin.conf" >/dev/null
  fi
}

main() {
  load_node_facts
  require_bootstrapped "nothing to maintain"
  # held until the script exits: the boot (bootstrap.sh) and this run never overlap
  exec 9>"${CFCR_BOOT_LOCK:-/run/cfcr-bootstrap.lock}" # an older lib.sh (a member not yet replaced) does not name it
  flock 9
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' EXIT
  window=$((CFCR_RENEW_BEFORE_DAYS * 86400))
  install_from_store
  renew_kubeadm_managed
  resign_etcd_leaves
  restart_changed
  refresh_join_token
  log "maintenance done"
}

# Run when executed; sourcing defines the steps only.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
