#!/bin/bash
# cfcr boot script: turns a fresh Ubuntu VM into a control-plane member or a worker.
# Idempotent: every step checks before it acts, so running it again (after a reboot,
# or after a failed attempt) does no harm. Reads node.env (role facts and paths), the
# artifacts list (pinned downloads) and secrets.sh (secret ids), all under /etc/cfcr.
set -euo pipefail
umask 077

# shellcheck source=/dev/null
. /usr/local/lib/cfcr/lib.sh
load_node_facts


# 1. Host: kernel modules, sysctls (incl. what protectKernelDefaults requires), no swap.
setup_host() {
  log "host setup: kernel modules, sysctls, swap off"
  local module
  while read -r module; do
    [ -n "$module" ] && modprobe "$module"
  done <"$CFCR_MODULES_LOAD"
  sysctl --quiet --system >/dev/null
  swapoff -a
  sed -i -E '/^[^#].*[[:space:]]swap[[:space:]]/s/^/#cfcr: /' /etc/fstab
}

# 2. Pinned binaries, each verified by checksum before use.
verify_download() {
  local file=$1 algo=$2 digest=$3 sum_url=$4
  case "$algo" in sha256 | sha512) ;; *) die "unsupported checksum algorithm $algo" ;; esac
  if [ "$digest" = "-" ]; then
    log "$(basename "$file"): cfcr pins no digest; verifying against the publisher's checksum file $sum_url"
    curl -fsSL --connect-timeout 10 --retry 30 --retry-delay 10 --retry-all-errors -o "$file.$algo" "$sum_url"
    read -r digest _ <"$file.$algo"
  else
    log "$(basename "$file"): verifying against the $algo digest pinned in cfcr's channel data"
  fi
  printf '%s  %s\n' "$digest" "$file" | "${algo}sum" --check --quiet --strict -
}

install_artifact() {
  local name=$1 file=$2 tmp
  case "$name" in
    kubernetes)
      tmp=$(mktemp -d)
      tar -xzf "$file" -C "$tmp" kubernetes/node/bin/kubelet kubernetes/node/bin/kubeadm kubernetes/node/bin/kubectl
      install -m 0755 "$tmp/kubernetes/node/bin/kubelet" "$tmp/kubernetes/node/bin/kubeadm" \
        "$tmp/kubernetes/node/bin/kubectl" "$CFCR_BIN_DIR/"
      rm -rf "$tmp"
      ;;
    containerd) tar -xzf "$file" -C /usr/local bin ;;
    runc) install -D -m 0755 "$file" "$CFCR_RUNC" ;;
    cni_plugins)
      install -d -m 0755 /opt/cni/bin
      tar -xzf "$file" -C /opt/cni/bin
      ;;
    crictl) tar -xzf "$file" -C "$CFCR_BIN_DIR" crictl ;;
    *) die "unknown artifact $name" ;;
  esac
}

install_artifacts() {
  local name version url algo digest sum_url file stamp
  install -d -m 0755 "$CFCR_CACHE" "$CFCR_STATE/installed"
  while IFS='|' read -r name version url algo digest sum_url; do
    case "$name" in '' | '#'*) continue ;; esac
    stamp="$CFCR_STATE/installed/$name"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$version $digest $url" ]; then
      log "$name $version is installed already"
      continue
    fi
    file="$CFCR_CACHE/$(basename "$url")"
    if ! { [ -f "$file" ] && verify_download "$file" "$algo" "$digest" "$sum_url"; }; then
      log "downloading $name $version from $url"
      curl -fsSL --connect-timeout 10 --retry 30 --retry-delay 10 --retry-all-errors -o "$file" "$url"
      verify_download "$file" "$algo" "$digest" "$sum_url" || die "checksum mismatch for $name $version ($url)"
    fi
    install_artifact "$name" "$file"
    printf '%s\n' "$version $digest $url" >"$stamp"
    log "installed $name $version"
  done <"$CFCR_ARTIFACTS_LIST"
}

start_runtime() {
  systemctl daemon-reload
  systemctl enable --now containerd.service
  systemctl enable kubelet.service
}

# 3. Control plane: the member's own etcd disk, formatted only when blank.
mount_etcd_disk() {
  local dev=$CFCR_ETCD_DEVICE n=0 fstype uuid
  until [ -b "$dev" ]; do
    n=$((n + 1))
    [ "$n" -le 120 ] || die "etcd disk $dev did not appear"
    sleep 5
  done
  dev=$(readlink -f "$dev")
  if ! blkid -p "$dev" >/dev/null 2>&1; then
    log "etcd disk $dev is blank: creating an ext4 file system"
    mkfs.ext4 -q -L cfcr-etcd "$dev"
  fi
  fstype=$(blkid -p -s TYPE -o value "$dev" || true)
  case "$fstype" in
    ext4 | xfs) ;;
    *) die "etcd disk $dev holds '$fstype' (partition table or other data): refusing to touch it" ;;
  esac
  uuid=$(blkid -s UUID -o value "$dev")
  install -d -m 0700 "$CFCR_ETCD_DATA_DIR"
  if ! grep -q "^UUID=$uuid " /etc/fstab; then
    printf 'UUID=%s %s %s defaults,nofail,noatime 0 2\n' "$uuid" "$CFCR_ETCD_DATA_DIR" "$fstype" >>/etc/fstab
    systemctl daemon-reload
  fi
  mountpoint -q "$CFCR_ETCD_DATA_DIR" || mount "$CFCR_ETCD_DATA_DIR"
  chmod 0700 "$CFCR_ETCD_DATA_DIR"
}

# 4. Secrets from the cloud's secret store, with this instance's identity only.
# 5. Placeholders into 0600 files.
render_configs() {
  render_template "$CFCR_KUBEADM_TEMPLATE" "$CFCR_KUBEADM_CONFIG"
  if [ "$CFCR_ROLE" = control-plane ]; then
    install -d -m 0700 "$(dirname "$CFCR_ENCRYPTION_CONFIG")"
    render_template "$CFCR_ENCRYPTION_TEMPLATE" "$CFCR_ENCRYPTION_CONFIG"
    write_signing_ca || true # kube-controller-manager's CSR signer reads one CA
  fi
}

# 6. kubeadm: init on every control-plane member (external etcd whose membership member.sh
#    settled; kubeadm init's phases create or update, so it is safe on a running cluster and
#    in a parallel boot), join on workers. Each attempt is stopped after KUBEADM_TIMEOUT
#    seconds: kubeadm's own waits end (4 minutes each), but a request an API server accepted and
#    never answered does not, and a boot must not hang for ever.
KUBEADM_TIMEOUT=${KUBEADM_TIMEOUT:-900}
run_kubeadm() {
  local attempt=1 extra=() action="join"
  if [ -f "$CFCR_KUBERNETES_DIR/kubelet.conf" ]; then
    log "kubelet.conf exists: this node is a member already"
    return 0
  fi
  [ "$CFCR_ROLE" != control-plane ] || action="init"
  while :; do
    log "kubeadm $action (node $CFCR_NODE_NAME, attempt $attempt)"
    timeout -k 30 "$KUBEADM_TIMEOUT" kubeadm "$action" --config "$CFCR_KUBEADM_CONFIG" "${extra[@]}" && break
    [ $? != 124 ] || log "kubeadm $action did not end within ${KUBEADM_TIMEOUT}s: stopped"
    [ "$attempt" -lt 5 ] || die "kubeadm failed $attempt times; see the log above"
    attempt=$((attempt + 1))
    # A retry finds what the earlier attempt left (its manifests, ports, kubelet files):
    # exactly those checks, named in node.env, are ignored; never all of them.
    extra=("--ignore-preflight-errors=$CFCR_RETRY_PREFLIGHT")
    sleep 30
    # the join token is short-lived: a retry takes the current one from the store
    fetch_all_secrets || die "the secret store did not answer for the retry"
    render_configs
  done
}

# 7. kubeadm embeds one CA in the kubeconfigs it writes (the first of ca.crt, or what
#    cluster-info carried at the join): every one trusts the store's whole bundle, so a node
#    that boots during a CA rotation (ROTATION.md) keeps working through its steps.
trust_ca_bundle() {
  local changed kubelet_restart=0
  changed=$(refresh_ca_trust)
  while read -r file; do
    case "$file" in
      '') ;;
      */controller-manager.conf) restart_static_pod kube-controller-manager ;;
      */scheduler.conf) restart_static_pod kube-scheduler ;;
      */kubelet.conf | "$CFCR_PKI_DIR/ca.crt") kubelet_restart=1 ;;
    esac
  done <<<"$changed"
  if [ "$kubelet_restart" = 1 ]; then restart_kubelet; fi
  if [ "$CFCR_ROLE" = control-plane ]; then
    refresh_cluster_info || log "could not refresh kube-public/cluster-info; maintenance tries again"
  fi
}

# 8. A joined worker needs no join credential again: its copies go (kubeadm removed
#    bootstrap-kubelet.conf itself), and the control plane takes away the cloud identity
#    that could read them (join-credentials.sh).
forget_join_credentials() {
  [ "$CFCR_ROLE" = worker ] || return 0
  rm -f "$CFCR_TOKEN_FILE" "$CFCR_KUBEADM_CONFIG"
}

main() {
  install -d -m 0755 /var/log/cfcr
  exec > >(tee -a /var/log/cfcr/bootstrap.log) 2>&1
  exec 9>"$CFCR_BOOT_LOCK"
  flock 9
  log "bootstrapping a $CFCR_ROLE node (Kubernetes $CFCR_KUBERNETES_VERSION, $CFCR_ARCH)"
  setup_host
  install_artifacts
  start_runtime
  if [ "$CFCR_ROLE" = control-plane ]; then
    mount_etcd_disk
  fi
  if [ -f "$CFCR_STATE/bootstrapped" ]; then
    log "bootstrapped before: host checked, kubelet running"
    systemctl start kubelet.service
    return 0
  fi
  log "fetching this role's secrets from the secret store"
  fetch_all_secrets
  render_configs
  if [ "$CFCR_ROLE" = control-plane ]; then
    # shellcheck source=/dev/null
    . "$CFCR_LIB_DIR/member.sh"
    etcd_membership
    forget_stale_node
  fi
  run_kubeadm
  # CIS 1.1.13-1.1.18, 4.1.5, 4.1.9: kubeconfigs and the kubelet's config file 0600.
  chmod 0600 "$CFCR_KUBERNETES_DIR"/*.conf "$CFCR_KUBELET_DIR/config.yaml"
  trust_ca_bundle # rewrites kubeconfigs 0600 too
  forget_join_credentials
  if [ "$CFCR_ROLE" = control-plane ]; then
    systemctl enable --now cfcr-maintain.timer
    if [ -n "$CFCR_JOIN_ROTATION" ]; then
      systemctl enable --now cfcr-join-credentials.timer
    fi
    if [ -f "$CFCR_BACKUP_TIMER_FILE" ]; then
      systemctl enable --now cfcr-etcd-backup.timer # etcd-backup.sh came with the secrets
    fi
    # member.sh's member_ready, retried by systemd until this member has reported ready
    systemctl start --no-block cfcr-member-ready.service
  fi
  date -u +%Y-%m-%dT%H:%M:%SZ >"$CFCR_STATE/bootstrapped"
  log "done"
}

# Run when executed; sourcing defines the steps only (the tests drive them one by one).
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
