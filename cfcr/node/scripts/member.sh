#!/bin/bash
# cfcr control-plane member model; sourced by bootstrap.sh (after lib.sh) on control-plane nodes.
#
# How a member's etcd starts, decided from its own disk and from its peers:
#  - its disk holds etcd data: it rejoins as itself with that data (etcd reads the
#    --initial-cluster* flags only for an empty data directory);
#  - blank disk, no peer answers with quorum, and no member has ever run: a new cluster.
#    Every rendered member starts with --initial-cluster-state=new (parallel boot);
#  - blank disk, the cluster answers with quorum:
#      listed, never started (a slow member of a new cluster)  -> new, as above;
#      listed, has run before (its disk was lost)              -> removed, added again as a learner;
#      listed as a learner that never started (earlier attempt) -> existing;
#      not listed (the control plane grew)                     -> added as a learner;
#    etcd then starts with --initial-cluster-state=existing and the membership etcd returned;
#  - blank disk, peers answer without quorum, and members have run before: refuse. A blank
#    member never starts a second cluster under a name that voted before;
#  - blank disk, no etcd peer answers at all, but an API server does (at the load balancer or
#    at another member's address): refuse too (the cluster exists, this member cannot reach it).
# After kubeadm, member_ready promotes the learner, removes members the render no longer names
# (the control plane shrank), and waits until this member is a started voter, etcd has quorum
# and every member that has started is healthy (members not created yet are not waited for:
# `pulumi up` creates them after this member's gate). Then it records its provider ID in the
# ConfigMap kube-system/cfcr-member-<member>, which only the cluster's admins can write:
# `pulumi up` waits for it before it replaces the next member (cfcr/bootstrap/rollout.py).
# Calls go to etcd's JSON gateway (/v3/...) with curl and the health-check client certificate.

ETCD_MEMBERS_FILE=$CFCR_STATE/etcd-members.json
ETCD_PEER_TRIES=${ETCD_PEER_TRIES:-3}
MEMBER_READY_TIMEOUT=${MEMBER_READY_TIMEOUT:-900}
ETCD_ADDED_ID=""
API_ANSWERED=""
# 1 when etcd_membership found no cluster that ran before (this member bootstraps a new one)
ETCD_NEW_CLUSTER=0

# etcd_api URL PATH JSON: one POST to etcd's gateway; the response on stdout.
etcd_api() {
  curl -fsS --max-time 5 --cacert "$CFCR_ETCD_PKI_DIR/ca.crt" \
    --cert "$CFCR_ETCD_PKI_DIR/healthcheck-client.crt" --key "$CFCR_ETCD_PKI_DIR/healthcheck-client.key" \
    -H 'Content-Type: application/json' -d "$3" "$1/v3/$2"
}

# etcd_healthy URL: etcd's /health of one member says true.
etcd_healthy() {
  curl -fsS --max-time 5 --cacert "$CFCR_ETCD_PKI_DIR/ca.crt" \
    --cert "$CFCR_ETCD_PKI_DIR/healthcheck-client.crt" --key "$CFCR_ETCD_PKI_DIR/healthcheck-client.key" "$1/health" 2>/dev/null \
    | jq -e '.health == "true"' >/dev/null
}

# etcd_call PATH JSON [self]: the call on the first member that answers (the others first;
# this member too when asked); the answering URL in ETCD_ANSWERED.
etcd_call() {
  local url urls=()
  for url in ${CFCR_ETCD_CLIENT_URLS//,/ }; do
    [ "$url" = "$CFCR_ETCD_CLIENT_URL" ] || urls+=("$url")
  done
  [ "${3:-}" = self ] && urls+=("$CFCR_ETCD_CLIENT_URL")
  for url in "${urls[@]}"; do
    if etcd_api "$url" "$1" "$2"; then
      ETCD_ANSWERED=$url
      return 0
    fi
  done
  return 1
}

# api_answers: some API server of the cluster answers (any HTTP status) at the load balancer
# or at another member's own address, on the API port; the URL in API_ANSWERED. The members
# are asked directly because the load balancer's name may lead back to this member (a cloud
# whose load balancer does not hairpin maps the API name to 127.0.0.1 on its members).
api_answers() {
  local url host urls=("$CFCR_API_SERVER")
  for url in ${CFCR_ETCD_CLIENT_URLS//,/ }; do
    [ "$url" = "$CFCR_ETCD_CLIENT_URL" ] && continue
    host=${url#https://}
    urls+=("https://${host%:*}:${CFCR_API_PORT:-6443}")
  done
  for url in "${urls[@]}"; do
    if [ "$(curl -sS --max-time 5 --cacert "$CFCR_PKI_DIR/ca.crt" -o /dev/null -w '%{http_code}' "$url/readyz" 2>/dev/null)" != 000 ]; then
      API_ANSWERED=$url
      return 0
    fi
  done
  return 1
}

# etcd_members CONSISTENCY [self] > FILE: the member list (linearizable: only with quorum).
etcd_members() {
  local body='{}'
  [ "$1" = linearizable ] && body='{"linearizable":true}'
  etcd_call cluster/member/list "$body" "${2:-}"
}

# set_etcd_flag NAME VALUE: rewrite one flag of the etcd static pod before it first starts.
set_etcd_flag() {
  local manifest=$CFCR_MANIFESTS_DIR/etcd.yaml
  grep -q -- "^ *- --$1=" "$manifest" || die "the etcd manifest has no --$1 flag"
  sed -i "s|^\( *- --$1=\).*\$|\1$2|" "$manifest"
}

# initial_cluster_from FILE: name=peerURL of every member etcd listed, names of members that
# never started taken from the render (by peer URL), this member named as itself.
initial_cluster_from() {
  jq -r --arg rendered "$CFCR_ETCD_INITIAL_CLUSTER" --arg me "$CFCR_MEMBER" --arg url "$CFCR_ETCD_PEER_URL" '
    ($rendered | split(",") | map(capture("^(?<name>[^=]+)=(?<url>.+)$")) | map({(.url): .name}) | add) as $names
    | [.members[] | .peerURLs[] as $u
       | (if $u == $url then $me elif ((.name // "") != "") then .name else ($names[$u] // "") end) as $n
       | "\($n)=\($u)"] | join(",")' "$1"
}

# etcd_membership: decide how this member's etcd starts (see the top of this file).
etcd_membership() {
  local n mine
  if [ -d "$CFCR_ETCD_DATA_DIR/member" ]; then
    log "etcd: $CFCR_MEMBER keeps the data on its disk and rejoins as itself"
    return 0
  fi
  for ((n = 1; n <= ETCD_PEER_TRIES; n++)); do
    if etcd_members linearizable >"$ETCD_MEMBERS_FILE" 2>/dev/null; then break; fi
    [ "$n" -lt "$ETCD_PEER_TRIES" ] && sleep 2
  done
  if [ "$n" -gt "$ETCD_PEER_TRIES" ]; then
    if etcd_members serializable >"$ETCD_MEMBERS_FILE" 2>/dev/null \
      && jq -e '[.members[]? | select((.clientURLs // []) | length > 0)] | length > 0' "$ETCD_MEMBERS_FILE" >/dev/null; then
      die "etcd: $CFCR_MEMBER's disk is blank and its peers ($ETCD_ANSWERED) answer without quorum, though members have run before: it will not start a second cluster. Bring the other members back, or restore a snapshot (docs/backups.md)"
    fi
    if api_answers; then
      die "etcd: $CFCR_MEMBER's disk is blank and no etcd peer answers, but the API at $API_ANSWERED does: the cluster exists and this member cannot reach its peers (ports 2379/2380); it will not start a second cluster"
    fi
    log "etcd: no peer answers and no member has run: a new cluster of the rendered members"
    ETCD_NEW_CLUSTER=1
    return 0
  fi
  mine=$(jq -c --arg url "$CFCR_ETCD_PEER_URL" '[.members[]? | select(.peerURLs | index($url))][0] // empty' "$ETCD_MEMBERS_FILE")
  if [ -n "$mine" ] && [ "$(jq -r '(.clientURLs // []) | length' <<<"$mine")" = 0 ]; then
    if [ "$(jq -r '.isLearner // false' <<<"$mine")" = false ]; then
      log "etcd: $CFCR_MEMBER is a member of the new cluster that never started: joining its bootstrap"
      ETCD_NEW_CLUSTER=1
      return 0
    fi
    log "etcd: $CFCR_MEMBER was added as a learner before (id $(jq -r .ID <<<"$mine")): starting it"
    ETCD_ADDED_ID=$(jq -r .ID <<<"$mine")
  else
    if [ -n "$mine" ]; then
      log "etcd: $CFCR_MEMBER ran before but its disk is blank: removing member $(jq -r .ID <<<"$mine") and adding it again"
      etcd_call cluster/member/remove "{\"ID\":\"$(jq -r .ID <<<"$mine")\"}" >/dev/null \
        || die "etcd: could not remove the old member $CFCR_MEMBER"
    else
      log "etcd: $CFCR_MEMBER is not a member yet (the control plane grew): adding it"
    fi
    etcd_call cluster/member/add "{\"peerURLs\":[\"$CFCR_ETCD_PEER_URL\"],\"isLearner\":true}" >"$ETCD_MEMBERS_FILE" \
      || die "etcd: $ETCD_ANSWERED refused to add $CFCR_MEMBER as a learner"
    ETCD_ADDED_ID=$(jq -r .member.ID "$ETCD_MEMBERS_FILE")
    log "etcd: $CFCR_MEMBER added as learner $ETCD_ADDED_ID"
  fi
  set_etcd_flag initial-cluster "$(initial_cluster_from "$ETCD_MEMBERS_FILE")"
  set_etcd_flag initial-cluster-state existing
}

# forget_stale_node: a member replaced by a new VM finds its Node still carrying the old VM's
# provider ID, which cannot change: the Node goes, the kubelet registers it again. In a cluster
# that ran before, the API may be away for a moment (another member restarting): asked again
# for a minute, then the boot goes on (the cloud controller manager deletes a Node whose
# instance is gone, and the kubelet registers it again). A new cluster has no API yet.
forget_stale_node() {
  local kubeconfig=$CFCR_KUBERNETES_DIR/admin.conf mine current n tries=1
  mine=$(provider_id 2>/dev/null) || return 0
  kubeadm init phase kubeconfig admin --config "$CFCR_KUBEADM_CONFIG" >/dev/null 2>&1 || return 0
  [ "$ETCD_NEW_CLUSTER" = 1 ] || tries=12
  for ((n = 1; n <= tries; n++)); do
    if current=$(kubectl --kubeconfig "$kubeconfig" --request-timeout=10s get node "$CFCR_NODE_NAME"       --ignore-not-found -o 'jsonpath={.spec.providerID}' 2>/dev/null); then
      if [ -z "$current" ] || [ "$current" = "$mine" ]; then
        return 0
      fi
      log "Node $CFCR_NODE_NAME belongs to the replaced VM ($current): deleting it for this one ($mine)"
      if kubectl --kubeconfig "$kubeconfig" --request-timeout=30s delete node "$CFCR_NODE_NAME"         --ignore-not-found --wait=false >/dev/null; then
        return 0
      fi
    fi
    [ "$n" -lt "$tries" ] && sleep 5
  done
  [ "$tries" = 1 ] || log "WARNING: the API did not answer about Node $CFCR_NODE_NAME in a minute: booting on (a stale Node goes with its instance)"
  return 0
}

# member_state: one look at the membership; prints what is missing, or nothing when etcd has
# quorum, this member is a started voter and every member that has started is healthy.
# Promotes this member when it is a learner and removes members the render no longer names.
member_state() {
  local id url state missing=()
  etcd_members linearizable self >"$ETCD_MEMBERS_FILE" 2>/dev/null || { echo "no etcd member answers with quorum"; return 0; }
  id=$(jq -r --arg url "$CFCR_ETCD_PEER_URL" '[.members[] | select(.peerURLs | index($url)) | select(.isLearner // false)][0].ID // empty' "$ETCD_MEMBERS_FILE")
  if [ -n "$id" ]; then
    if etcd_call cluster/member/promote "{\"ID\":\"$id\"}" >/dev/null 2>&1; then
      log "etcd: $CFCR_MEMBER promoted to a voting member"
    fi
    echo "$CFCR_MEMBER is a learner catching up"
    return 0
  fi
  while read -r id url; do
    [ -n "$id" ] || continue
    log "etcd: member $id ($url) is not in the rendered control plane: removing it"
    etcd_call cluster/member/remove "{\"ID\":\"$id\"}" self >/dev/null || missing+=("could not remove $url")
  done < <(jq -r --arg rendered "$CFCR_ETCD_INITIAL_CLUSTER" '
    ($rendered | split(",") | map(sub("^[^=]+="; ""))) as $urls
    | .members[] | select([.peerURLs[] | IN($urls[])] | any | not) | "\(.ID) \(.peerURLs | join(","))"' "$ETCD_MEMBERS_FILE")
  state=$(jq -r --arg url "$CFCR_ETCD_PEER_URL" '[.members[] | select(.peerURLs | index($url))][0]
    | if . == null then "absent" elif ((.clientURLs // []) | length) == 0 then "not started" else "started" end' "$ETCD_MEMBERS_FILE")
  [ "$state" = started ] || missing+=("$CFCR_MEMBER is $state")
  while read -r url; do
    [ -n "$url" ] || continue
    etcd_healthy "$url" || missing+=("$url is not healthy")
  done < <(jq -r '.members[] | select(((.clientURLs // []) | length) > 0) | .clientURLs[0]' "$ETCD_MEMBERS_FILE")
  [ "${#missing[@]}" = 0 ] || echo "${missing[*]}"
}

# member_ready: wait until member_state sees nothing missing, then tell `pulumi up` so (run by
# cfcr-member-ready.service, which retries until it succeeds).
member_ready() {
  local start seen mark machine
  start=$(date +%s)
  while :; do
    seen=$(member_state)
    [ -z "$seen" ] && break
    if [ $(($(date +%s) - start)) -ge "$MEMBER_READY_TIMEOUT" ]; then
      die "etcd: $CFCR_MEMBER did not become a healthy voter of a healthy cluster within ${MEMBER_READY_TIMEOUT}s; last seen: $seen"
    fi
    sleep 5
  done
  mark=$(provider_id 2>/dev/null || printf '%s' "$CFCR_NODE_NAME")
  machine=()
  # where the provider ID outlives the machine (GCP), the machine's own id tells the gate it is this one
  if declare -F cfcr_machine_id >/dev/null; then
    machine=(--from-literal=machine="$(cfcr_machine_id)") || die "could not read this machine's id"
  fi
  kubectl --kubeconfig "$CFCR_KUBERNETES_DIR/admin.conf" --request-timeout=30s create configmap "cfcr-member-$CFCR_MEMBER" \
    -n kube-system --from-literal=providerID="$mark" --from-literal=node="$CFCR_NODE_NAME" "${machine[@]}" --dry-run=client -o yaml \
    | kubectl --kubeconfig "$CFCR_KUBERNETES_DIR/admin.conf" --request-timeout=30s apply --server-side --force-conflicts \
      --field-manager=cfcr-member -f - >/dev/null \
    || die "could not record $CFCR_MEMBER as ready in kube-system/cfcr-member-$CFCR_MEMBER"
  log "etcd: $CFCR_MEMBER is a healthy voter of a healthy cluster; recorded in kube-system/cfcr-member-$CFCR_MEMBER"
}
