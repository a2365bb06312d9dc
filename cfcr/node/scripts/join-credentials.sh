#!/bin/bash
# cfcr join credentials, on every control-plane member (cfcr-join-credentials.timer, every
# two minutes; members take turns through nothing but idempotence):
#  1. the join token in the secret store always has at least CFCR_TOKEN_MIN_LEFT seconds to
#     live: when it has less, or is gone from the cluster, a new bootstrap token (TTL
#     CFCR_TOKEN_TTL) is created in the cluster and stored; the old one expires on its own and
#     kube-controller-manager's token cleaner deletes it;
#  2. a join token is good for one thing, the node-client certificate of a VM that is joining:
#     kubeadm's binding that lets kube-controller-manager approve such a request for any node
#     name is removed, and a request is approved here only for a VM of this cluster's pools
#     that still holds its join identity (cfcr_join_candidate) and has no Node yet, or whose
#     Node is stale: not Ready and registered before this VM was created (the cloud recreated
#     the VM under the same name: a managed instance group's repair, a reused private
#     address); the stale Node is deleted first. A request for any other existing Node's name
#     is denied;
#  3. every worker that has joined loses the cloud identity that may read the join secrets
#     (cfcr_revoke_join_access). Both hooks come from the cloud, in join-access.sh.
# Never a token on a command line: values travel on standard input.
set -euo pipefail
umask 077

# shellcheck source=/dev/null
. /usr/local/lib/cfcr/lib.sh
load_node_facts

require_bootstrapped "no join credentials to look after"
exec 8>/run/cfcr-join-credentials.lock
flock -n 8 || exit 0
export KUBECONFIG=$CFCR_KUBERNETES_DIR/admin.conf
TOKEN_GROUP=system:bootstrappers:kubeadm:default-node-token

# token_expiry ID: the expiration of bootstrap token ID in seconds since the epoch; nothing
# when the cluster has no such token.
token_expiry() {
  local value
  value=$(kubectl -n kube-system get secret "bootstrap-token-$1" -o jsonpath='{.data.expiration}' 2>/dev/null) || return 0
  [ -n "$value" ] || return 0
  date -d "$(printf '%s' "$value" | base64 -d)" +%s
}

rotate_token() {
  local stage current expiry id secret expires
  stage=$(mktemp -d)
  # shellcheck disable=SC2064  # expand now: the trap runs after this function returned
  trap "rm -rf '$stage'" RETURN
  if ! fetch_secret_to bootstrap-token "$stage/current" 0600; then
    log "the secret store did not give the join token: not rotating now"
    return 1
  fi
  current=$(<"$stage/current")
  expiry=$(token_expiry "${current%%.*}")
  if [ -n "$expiry" ] && [ $((expiry - $(date +%s))) -gt "$CFCR_TOKEN_MIN_LEFT" ]; then
    return 0
  fi
  id=$(openssl rand -hex 3)
  secret=$(openssl rand -hex 8)
  expires=$(date -u -d "+$CFCR_TOKEN_TTL seconds" +%Y-%m-%dT%H:%M:%SZ)
  # each step checks its own status: called as `step || status=1`, a function runs without set -e
  kubectl apply -f - >/dev/null <<MANIFEST || { log "could not create the new join token"; return 1; }
apiVersion: v1
kind: Secret
metadata:
  name: bootstrap-token-$id
  namespace: kube-system
type: bootstrap.kubernetes.io/token
stringData:
  token-id: "$id"
  token-secret: "$secret"
  expiration: "$expires"
  usage-bootstrap-authentication: "true"
  usage-bootstrap-signing: "true"
  auth-extra-groups: "$TOKEN_GROUP"
  description: "cfcr join token, rotated by the control plane"
MANIFEST
  if ! printf '%s.%s' "$id" "$secret" | cfcr_secret_store bootstrap-token; then
    log "created join token $id but could not store it: the stored one stays until the next run"
    return 1
  fi
  printf '%s.%s\n' "$id" "$secret" | write_atomic "$CFCR_TOKEN_FILE" 0600 || return 1
  log "rotated the join token: $id expires $expires (the one it replaces expires on its own)"
}

AUTO_APPROVE_BINDING=kubeadm:node-autoapprove-bootstrap
CLIENT_SIGNER=kubernetes.io/kube-apiserver-client-kubelet

# csr_subject NAME: the subject of a CSR's request (RFC 2253: CN=...,O=...)
csr_subject() {
  kubectl get csr "$1" -o jsonpath='{.spec.request}' | base64 -d | openssl req -noout -subject -nameopt RFC2253 |
    sed 's/^subject=//'
}

# node_facts NAME: "<registered, seconds since the epoch> <Ready status>" of Node NAME; nothing
# when there is no such Node; fails when the API server does not answer.
node_facts() {
  local out
  out=$(kubectl get node "$1" --ignore-not-found \
    -o jsonpath='{.metadata.creationTimestamp} {.status.conditions[?(@.type=="Ready")].status}') || return 1
  [ -n "$out" ] || return 0
  printf '%s %s\n' "$(date -d "${out%% *}" +%s)" "${out#* }"
}

approve_joining() {
  local csr signer user conditions subject name node created
  kubectl delete clusterrolebinding "$AUTO_APPROVE_BINDING" --ignore-not-found >/dev/null || return 1
  while read -r csr signer user conditions; do
    if [ "$signer" != "$CLIENT_SIGNER" ] || [ "$conditions" != "<none>" ]; then continue; fi
    case "$user" in system:bootstrap:*) ;; *) continue ;; esac
    subject=$(csr_subject "$csr")
    name=$(printf '%s' "$subject" | tr ',' '\n' | sed -n 's/^CN=system:node://p')
    if [ -z "$name" ] || ! printf '%s' "$subject" | tr ',' '\n' | grep -qx 'O=system:nodes'; then
      kubectl certificate deny "$csr" >/dev/null
      log "denied $csr from $user: '$subject' is not a node's client certificate"
    elif ! node=$(node_facts "$name"); then
      log "could not look up Node $name: $csr waits for the next run"
    elif [ -n "$node" ] && [ "${node#* }" = True ]; then
      kubectl certificate deny "$csr" >/dev/null
      log "denied $csr from $user: a Ready Node named $name exists; a join token never takes over a node"
    elif ! created=$(cfcr_join_candidate "$name"); then
      if [ -n "$node" ]; then
        kubectl certificate deny "$csr" >/dev/null
        log "denied $csr from $user: a Node named $name exists and no VM of that name is joining"
      fi
    elif [ -z "$node" ]; then
      kubectl certificate approve "$csr" >/dev/null
      log "approved $csr: $name is a pool VM still joining"
    elif [ "$created" -gt "${node%% *}" ]; then
      # the VM was created after its Node registered: the Node's kubelet ran on a VM that is gone
      kubectl delete node "$name" --wait=false >/dev/null || { log "could not delete the stale Node $name"; continue; }
      kubectl certificate approve "$csr" >/dev/null
      log "approved $csr: $name is a pool VM recreated under its old name; its stale Node is deleted"
    else
      kubectl certificate deny "$csr" >/dev/null
      log "denied $csr from $user: Node $name registered after its VM was created; a join token never takes over a node"
    fi
  done < <(kubectl get csr --no-headers \
    -o custom-columns=NAME:.metadata.name,SIGNER:.spec.signerName,USER:.spec.username,COND:.status.conditions[*].type)
}

revoke_joined() {
  local done_list
  done_list=$(kubectl get nodes -l '!node-role.kubernetes.io/control-plane' \
    -o jsonpath='{range .items[*]}{.spec.providerID}{"\n"}{end}' | cfcr_revoke_join_access) || { log "revoking joined workers' join identity failed"; return 1; }
  if [ -n "$done_list" ]; then
    while read -r line; do log "joined worker's join identity dropped: $line"; done <<<"$done_list"
  fi
}

status=0
approve_joining || status=1
rotate_token || status=1
revoke_joined || status=1
exit "$status"
