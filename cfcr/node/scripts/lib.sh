#!/bin/bash
# cfcr node library, sourced by bootstrap.sh and maintain.sh.
# Rule: no function here ever prints a secret value or passes one on a command line.

# The one path the scripts cannot take from node.env: where node.env is (cfcr/node/paths.py
# CFCR_ETC_DIR; the scripts source this library at paths.py LIB_SCRIPT_PATH, a literal too).
# Every other path that Python defines comes from node.env as a CFCR_* variable.
CFCR_ETC=/etc/cfcr
# shellcheck disable=SC2034  # used by the scripts that source this library
CFCR_CACHE=/var/cache/cfcr
# bootstrap.sh and maintain.sh hold this lock while they run: never both at once
# shellcheck disable=SC2034
CFCR_BOOT_LOCK=/run/cfcr-bootstrap.lock

# load_node_facts: the role facts and paths (node.env), the secret ids (secrets.sh), the
# cloud's identity hook when it has one (identity.sh), the control plane's join-access hook
# (join-access.sh), and a PATH that finds /usr/local and the node's binaries.
# Sourced files define variables and functions for the calling script.
load_node_facts() {
  # shellcheck source=/dev/null
  . "$CFCR_ETC/node.env"
  # shellcheck source=/dev/null
  . "$CFCR_SECRETS_SCRIPT"
  if [ -f "$CFCR_IDENTITY_SCRIPT" ]; then
    # shellcheck source=/dev/null
    . "$CFCR_IDENTITY_SCRIPT"
  fi
  if [ -f "$CFCR_JOIN_ACCESS_SCRIPT" ]; then
    # shellcheck source=/dev/null
    . "$CFCR_JOIN_ACCESS_SCRIPT"
  fi
  export PATH="/usr/local/sbin:$CFCR_BIN_DIR:/usr/sbin:/usr/bin:/sbin:/bin"
}

log() { printf '%s cfcr: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }

# require_bootstrapped WHAT: the timers' scripts do nothing before the node has booted.
require_bootstrapped() {
  if [ ! -f "$CFCR_STATE/bootstrapped" ]; then
    log "not bootstrapped yet: $1"
    exit 0
  fi
}
die() { log "ERROR: $*"; exit 1; }

# write_atomic DEST MODE: stdin -> DEST, root-owned with MODE, through a temp file
# in the same directory and a rename, so readers never see a partial file.
write_atomic() {
  local dest=$1 mode=$2 dir tmp
  dir=$(dirname "$dest")
  [ -d "$dir" ] || install -d -m 0700 "$dir"
  tmp=$(mktemp "$dir/.cfcr.XXXXXX")
  if ! cat >"$tmp"; then
    rm -f "$tmp"
    return 1
  fi
  chown root:root "$tmp"
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$dest"
}

# fetch_secret_to KEY DEST MODE: read secret KEY through the cloud hook
# (cfcr_secret_fetch, from secrets.sh) into DEST; retries; refuses empty values.
fetch_secret_to() {
  local key=$1 dest=$2 mode=$3 dir tmp n
  dir=$(dirname "$dest")
  [ -d "$dir" ] || install -d -m 0700 "$dir"
  tmp=$(mktemp "$dir/.cfcr.XXXXXX")
  for n in 1 2 3 4 5 6 7 8 9 10; do
    if cfcr_secret_fetch "$key" >"$tmp" 2>/dev/null && [ -s "$tmp" ]; then
      chown root:root "$tmp"
      chmod "$mode" "$tmp"
      mv -f "$tmp" "$dest"
      return 0
    fi
    log "fetching secret '$key' failed (attempt $n/10)"
    sleep $((n * 3))
  done
  rm -f "$tmp"
  log "could not fetch secret '$key' with this instance's identity"
  return 1
}

# fetch_all_secrets [STAGE_DIR]: every secret of this role (CFCR_SECRETS, from
# secrets.sh) to its destination, or into STAGE_DIR/<n> when a stage is given.
fetch_all_secrets() {
  local stage=${1:-} entry key path mode n=0
  cfcr_secret_setup || return 1
  for entry in "${CFCR_SECRETS[@]}"; do
    IFS='|' read -r key path mode <<<"$entry"
    n=$((n + 1))
    if [ -n "$stage" ]; then
      fetch_secret_to "$key" "$stage/$n" 0600 || return 1
    else
      fetch_secret_to "$key" "$path" "$mode" || return 1
    fi
  done
}

# render_template SRC DEST: copy SRC to DEST (mode 0600) replacing the placeholders
# @BOOTSTRAP_TOKEN@, @ENCRYPTION_KEY@, @NODE_IP@, @CA_CERT_HASH@ and @PROVIDER_ID@.
# Substitution happens inside bash, so values never appear in a process list.
render_template() {
  local src=$1 dest=$2 content value
  content=$(<"$src")
  shopt -u patsub_replacement 2>/dev/null || true
  if [[ $content == *@BOOTSTRAP_TOKEN@* ]]; then
    value=$(<"$CFCR_TOKEN_FILE")
    [[ $value =~ ^[a-z0-9]{6}\.[a-z0-9]{16}$ ]] || die "the bootstrap token in the secret store is malformed"
    content=${content//@BOOTSTRAP_TOKEN@/$value}
  fi
  if [[ $content == *@ENCRYPTION_KEY@* ]]; then
    value=$(<"$CFCR_ENCRYPTION_KEY_FILE")
    [[ $value =~ ^[A-Za-z0-9+/]{43}=$ ]] || die "the encryption key in the secret store is not 32 bytes of base64"
    content=${content//@ENCRYPTION_KEY@/$value}
  fi
  if [[ $content == *@NODE_IP@* ]]; then
    value=$(node_ip)
    [ -n "$value" ] || die "could not determine this node's IPv4 address"
    content=${content//@NODE_IP@/$value}
  fi
  if [[ $content == *@CA_CERT_HASH@* ]]; then
    value=$(ca_cert_hash)
    content=${content//@CA_CERT_HASH@/$value}
  fi
  if [[ $content == *@PROVIDER_ID@* ]]; then
    value=$(provider_id) || die "could not read this instance's provider ID from the instance metadata"
    content=${content//@PROVIDER_ID@/$value}
  fi
  printf '%s\n' "$content" | write_atomic "$dest" 0600
}

# node_ip: the IPv4 source address of this node's default route.
node_ip() {
  ip -4 route get 1.1.1.1 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "src") { print $(i + 1); exit } }'
}

# provider_id: this instance's cloud provider ID, from the cloud hook (cfcr_provider_id,
# defined in identity.sh) with retries, checked for shape and cached in
# $CFCR_STATE/provider-id: an instance keeps its ID for life.
provider_id() {
  local cache=$CFCR_STATE/provider-id value n
  local shape='^[a-z]+://[A-Za-z0-9._:/()-]+$'
  if [ -s "$cache" ]; then
    value=$(<"$cache")
    if [[ $value =~ $shape ]]; then
      printf '%s\n' "$value"
      return 0
    fi
  fi
  declare -F cfcr_provider_id >/dev/null || { log "the cloud hook defines no cfcr_provider_id"; return 1; }
  for n in 1 2 3 4 5; do
    if value=$(cfcr_provider_id 2>/dev/null) && [[ $value =~ $shape ]]; then
      printf '%s\n' "$value" | write_atomic "$cache" 0644
      printf '%s\n' "$value"
      return 0
    fi
    log "reading the provider ID from the instance metadata failed (attempt $n/5)"
    sleep $((n * 2))
  done
  return 1
}

# ca_cert_hash: kubeadm's discovery pin of the (first) cluster CA certificate
# ($CFCR_CA_CERT), which came from the secret store over TLS with the instance identity.
ca_cert_hash() {
  openssl x509 -in "${CFCR_CA_CERT:-$CFCR_PKI_DIR/ca.crt}" -noout -pubkey \
    | openssl pkey -pubin -outform DER \
    | sha256sum | awk '{ print "sha256:" $1 }'
}

# restart_static_pod NAME: stop the container; the kubelet starts it again, reading
# the renewed files.
restart_static_pod() {
  local ids=()
  mapfile -t ids < <(crictl ps --name "^$1\$" -q 2>/dev/null || true)
  if [ "${#ids[@]}" -gt 0 ] && [ -n "${ids[0]}" ]; then
    log "restarting $1"
    crictl stop "${ids[@]}" >/dev/null
  fi
}

# write_signing_ca: the first certificate of ca.crt (the signing generation: ROTATION.md), alone,
# into $CFCR_SIGNING_CA for kube-controller-manager's CSR signer, which reads exactly one
# certificate. True when the file changed.
write_signing_ca() {
  local first
  first=$(awk '{ print } /^-+END CERT/ { exit }' "$CFCR_PKI_DIR/ca.crt")
  [ -n "$first" ] || die "$CFCR_PKI_DIR/ca.crt holds no certificate"
  if [ -f "$CFCR_SIGNING_CA" ] && [ "$first" = "$(<"$CFCR_SIGNING_CA")" ]; then
    return 1
  fi
  printf '%s\n' "$first" | write_atomic "$CFCR_SIGNING_CA" 0644
}

# embed_ca_bundle KUBECONFIG BUNDLE: the kubeconfig's cluster trusts exactly the CAs of BUNDLE
# (kubeadm embeds only the first certificate of ca.crt; during a CA rotation clients must trust
# both generations). Written through a copy and a rename. True when the file changed.
embed_ca_bundle() {
  local conf=$1 bundle=$2 cluster have copy
  [ -f "$conf" ] || return 1
  have=$(kubectl config view --kubeconfig "$conf" --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
  [ "$have" != "$(base64 -w0 <"$bundle")" ] || return 1
  cluster=$(kubectl config view --kubeconfig "$conf" -o jsonpath='{.clusters[0].name}')
  copy=$(mktemp)
  cp "$conf" "$copy"
  kubectl config set-cluster "$cluster" --kubeconfig "$copy" --certificate-authority="$bundle" --embed-certs >/dev/null
  write_atomic "$conf" 0600 <"$copy"
  rm -f "$copy"
  log "$conf trusts the CA bundle ($(grep -c -e '-BEGIN CERT' "$bundle") certificates)"
}

# restart_kubelet: the kubelet reads kubelet.conf and its client certificate when it starts.
restart_kubelet() {
  log "restarting the kubelet"
  systemctl restart kubelet.service
}

# refresh_ca_trust: the kubeconfigs kubeadm wrote on this node trust every CA generation of the
# secret store's bundle (kubeadm embeds only the first certificate of ca.crt, or the CA that
# kube-public/cluster-info carried when the node joined), and a worker's kubelet takes the
# bundle as its client CA too. Prints the files it changed, one per line.
refresh_ca_trust() {
  local conf bundle=$CFCR_PKI_DIR/ca.crt
  if [ "$CFCR_ROLE" != control-plane ]; then
    bundle=$CFCR_CA_CERT # a worker's copy from the store; kubeadm join wrote cluster-info's CA
    if ! cmp -s "$bundle" "$CFCR_PKI_DIR/ca.crt"; then
      write_atomic "$CFCR_PKI_DIR/ca.crt" 0644 <"$bundle"
      echo "$CFCR_PKI_DIR/ca.crt"
    fi
  fi
  for conf in admin.conf super-admin.conf controller-manager.conf scheduler.conf kubelet.conf; do
    if embed_ca_bundle "$CFCR_KUBERNETES_DIR/$conf" "$bundle"; then echo "$CFCR_KUBERNETES_DIR/$conf"; fi
  done
}

# refresh_cluster_info: kube-public/cluster-info (what `kubeadm join` discovers, verified against
# the join pins) carries the whole CA bundle; kubeadm writes the first CA only. The bootstrap
# signer of kube-controller-manager signs the new content for every join token.
refresh_cluster_info() {
  local current server want stage n
  export KUBECONFIG=$CFCR_KUBERNETES_DIR/admin.conf
  for n in 1 2 3 4 5 6 7 8 9 10 11 12; do # the API servers may be restarting onto new files
    if current=$(kubectl -n kube-public get configmap cluster-info -o jsonpath='{.data.kubeconfig}' 2>/dev/null); then
      break
    fi
    [ "$n" -lt 12 ] || return 1
    sleep 5
  done
  server=$(awk '$1 == "server:" { print $2; exit }' <<<"$current")
  [ -n "$server" ] || { log "kube-public/cluster-info names no server"; return 1; }
  want=$(base64 -w0 <"$CFCR_PKI_DIR/ca.crt")
  if grep -qF "certificate-authority-data: $want" <<<"$current"; then
    return 0
  fi
  stage=$(mktemp)
  # the layout kubeadm gives it (phases/bootstraptoken/clusterinfo), with the bundle
  printf 'apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: %s\n    server: %s\n  name: ""\ncontexts: null\ncurrent-context: ""\nkind: Config\nusers: null\n' \
    "$want" "$server" >"$stage"
  jq -n --rawfile k "$stage" '{data: {kubeconfig: $k}}' \
    | kubectl -n kube-public patch configmap cluster-info --type merge --patch-file /dev/stdin >/dev/null
  rm -f "$stage"
  log "kube-public/cluster-info carries the CA bundle ($(grep -c -e '-BEGIN CERT' "$CFCR_PKI_DIR/ca.crt") certificates)"
}
