#!/usr/bin/env bash
# A single-node Kubernetes 1.20 on 127.0.0.1, built from Debian 12's own `kubernetes` source
# package (no registry serves Kubernetes binaries to this machine). See docs/kubernetes.md.
#
#   scripts/k8s.sh build    build the four binaries and the pause image once (cached)
#   scripts/k8s.sh up       start etcd, apiserver, controller-manager, scheduler, kubelet
#   scripts/k8s.sh down     stop everything; no process, pod container or mount is left
#   scripts/k8s.sh status   what runs
#   scripts/k8s.sh env      print `export KUBECONFIG=...`
#
# Environment: CHAOSLAB_K8S_CACHE (build cache, default /var/cache/chaoslab/k8s-1.20.2),
# CHAOSLAB_K8S_STATE (runtime state, default /var/lib/chaoslab/k8s), CHAOSLAB_K8S_PORT (6443).
set -euo pipefail

VERSION=1.20.2
CACHE=${CHAOSLAB_K8S_CACHE:-/var/cache/chaoslab/k8s-$VERSION}
STATE=${CHAOSLAB_K8S_STATE:-/var/lib/chaoslab/k8s}
API_PORT=${CHAOSLAB_K8S_PORT:-6443}
ETCD_PORT=${CHAOSLAB_K8S_ETCD_PORT:-2479}
ETCD_PEER_PORT=$((ETCD_PORT + 1))
NODE_NAME=${CHAOSLAB_K8S_NODE:-chaoslab-node}
BIN="$CACHE/bin"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet)
PAUSE_IMAGE=k8s.gcr.io/pause:3.2
BUSYBOX_IMAGE=chaoslab/busybox:local

log() { echo "k8s: $*" >&2; }

need_debs() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

deb_src_stanzas() {
  # deb-src stanzas (deb822) for the machine's own Debian sources: the same URIs, suites,
  # components and keyring as its `deb` entries, so `apt-get source` uses whatever mirror (or
  # snapshot, or proxy) the machine is configured with. Reads APT_DIR/sources.list.d/*.sources
  # and APT_DIR/sources.list (+ sources.list.d/*.list, one-line format). Only the release's own
  # suites (CODENAME, CODENAME-updates, CODENAME-security...) and no entry signed by another
  # keyring file: third-party repositories (Docker's, nodesource's) publish no Debian sources.
  local apt_dir=${1:-/etc/apt} codename=${2:-}
  if [ -z "$codename" ]; then codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}"); fi
  [ -n "$codename" ] || return 0
  local deb822=() lists=() f
  for f in "$apt_dir"/sources.list.d/*.sources; do [ -f "$f" ] && deb822+=("$f"); done
  for f in "$apt_dir"/sources.list "$apt_dir"/sources.list.d/*.list; do [ -f "$f" ] && lists+=("$f"); done
  {
    if [ ${#deb822[@]} -gt 0 ]; then
      awk -v codename="$codename" '
        function flush(   i, n, s, kept) {
          if (types ~ /(^|[ \t])deb([ \t]|$)/ && tolower(enabled) != "no" && uris != "" && debian_key(signed)) {
            n = split(suites, s, /[ \t]+/); kept = ""
            for (i = 1; i <= n; i++) if (s[i] == codename || index(s[i], codename "-") == 1) kept = kept (kept == "" ? "" : " ") s[i]
            if (kept != "") {
              printf "Types: deb-src\nURIs: %s\nSuites: %s\nComponents: %s\n", uris, kept, comps
              if (signed != "") printf "Signed-By: %s\n", signed
              printf "\n"
            }
          }
          types = uris = suites = comps = signed = enabled = key = ""
        }
        # an inline key (a deb822 continuation block) is copied as it is
        function debian_key(k) { return k == "" || k ~ /BEGIN PGP/ || k ~ /debian-archive-keyring/ }
        FNR == 1 && NR > 1 { flush() }  # a file ends a stanza (mawk has no ENDFILE)
        /^#/ { next }
        /^[ \t]*$/ { flush(); next }
        /^[ \t]/ { if (key == "signed-by") signed = signed "\n" $0; next }  # a continuation (an inline key)
        {
          key = tolower(substr($0, 1, index($0, ":") - 1)); val = substr($0, index($0, ":") + 1)
          gsub(/^[ \t]+|[ \t]+$/, "", val)
          if (key == "types") types = val; else if (key == "uris") uris = val
          else if (key == "suites") suites = val; else if (key == "components") comps = val
          else if (key == "signed-by") signed = val; else if (key == "enabled") enabled = val
        }
        END { flush() }
      ' "${deb822[@]}"
    fi
    if [ ${#lists[@]} -gt 0 ]; then
      awk -v codename="$codename" '
        { sub(/#.*/, "") }
        $1 != "deb" { next }
        {
          i = 2; signed = ""
          if ($2 ~ /^\[/) {  # options: [ arch=amd64 signed-by=/path ]
            for (; i <= NF; i++) {
              opt = $i; gsub(/[\[\]]/, "", opt)
              if (opt ~ /^signed-by=/) signed = substr(opt, 11)
              if ($i ~ /\]$/) { i++; break }
            }
          }
          uri = $i; suite = $(i + 1); comps = ""
          for (j = i + 2; j <= NF; j++) comps = comps (comps == "" ? "" : " ") $j
          if (suite != codename && index(suite, codename "-") != 1) next
          if (signed != "" && signed !~ /debian-archive-keyring/) next
          printf "Types: deb-src\nURIs: %s\nSuites: %s\nComponents: %s\n", uri, suite, comps
          if (signed != "") printf "Signed-By: %s\n", signed
          printf "\n"
        }
      ' "${lists[@]}"
    fi
  }
}

enable_deb_src() {
  # A separate deb-src entry mirroring the machine's binary ones, so its own lists are untouched.
  local f=/etc/apt/sources.list.d/chaoslab-deb-src.sources stanzas
  stanzas=$(deb_src_stanzas)
  if [ -z "$stanzas" ]; then
    log "no Debian $(. /etc/os-release && echo "${VERSION_CODENAME:-}") entry in /etc/apt/sources.list(.d) to take a deb-src from"
    exit 1
  fi
  if [ ! -f "$f" ] || [ "$(cat "$f")" != "$stanzas" ]; then
    printf '%s\n' "$stanzas" >"$f"
    apt-get update -qq
  fi
}

# --- patches (documented in docs/kubernetes.md) -------------------------------------------------

patch_reflect2() {
  # Vendored reflect2 1.0.1 reads Go's runtime map internals of Go <= 1.17 and crashes under
  # Go 1.18+ ("fatal error: fault" in runtime.mapiternext); 1.0.2 is Debian's fixed copy.
  local src=/usr/share/gocode/src/github.com/modern-go/reflect2 dst=vendor/github.com/modern-go/reflect2
  [ -d "$src" ] || { log "missing $src (golang-github-modern-go-reflect2-dev)"; exit 1; }
  rm -rf "$dst"
  mkdir -p "$dst"
  # Only the package's Go sources (vendor mode ignores tests; Debian ships a few extra dirs).
  find "$src" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' -o -name LICENSE \) ! -name '*_test.go' \
    -exec cp -L {} "$dst"/ \;
  sed -i 's#github.com/modern-go/reflect2 v1.0.1#github.com/modern-go/reflect2 v1.0.2#g' go.mod vendor/modules.txt
  grep -q 'modern-go/reflect2 v1.0.2' vendor/modules.txt
}

patch_oom_adj() {
  # Root here lacks CAP_SYS_RESOURCE, so runc refuses any negative oom_score_adj. The sandbox
  # (pause) container gets -998 by default: make it 0.
  local f=pkg/kubelet/dockershim/docker_sandbox.go
  sed -i 's/defaultSandboxOOMAdj[[:space:]]*int = -998/defaultSandboxOOMAdj int = 0/' "$f"
  grep -q 'defaultSandboxOOMAdj int = 0' "$f"
  # Guaranteed-QoS containers get -997 (pkg/kubelet/qos/policy.go). Patched to 0 as well, so a
  # user's Guaranteed pod runs here instead of failing with "can't get final child's PID".
  local q=pkg/kubelet/qos/policy.go
  sed -i 's/guaranteedOOMScoreAdj[[:space:]]*int = -997/guaranteedOOMScoreAdj int = 0/' "$q"
  grep -q 'guaranteedOOMScoreAdj int = 0' "$q"
}

cmd_build() {
  local done_all=1 b
  for b in "${BINARIES[@]}"; do [ -x "$BIN/$b" ] || done_all=0; done
  if [ "$done_all" = 1 ] && docker image inspect "$PAUSE_IMAGE" >/dev/null 2>&1 \
     && docker image inspect "$BUSYBOX_IMAGE" >/dev/null 2>&1; then
    log "build cached in $CACHE"
    return 0
  fi
  need_debs dpkg-dev golang-go golang-github-modern-go-reflect2-dev rsync etcd-server gcc libc6-dev \
    busybox-static openssl
  # Debian's etcd-server package starts a system etcd on 2379; ours runs on its own port.
  (command -v systemctl >/dev/null && systemctl disable --now etcd 2>/dev/null) || service etcd stop 2>/dev/null || true
  mkdir -p "$CACHE" "$BIN"
  local src="$CACHE/src"
  if [ ! -f "$src/.chaoslab-patched" ]; then
    enable_deb_src
    rm -rf "$CACHE/dl" "$src"
    mkdir -p "$CACHE/dl"
    (cd "$CACHE/dl" && apt-get source -qq "kubernetes=$(apt-cache showsrc kubernetes | awk '/^Version:/{print $2; exit}')" >/dev/null)
    mv "$(find "$CACHE/dl" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -1)" "$src"
    grep -q "gitVersion.*v$VERSION\|$VERSION" "$src/debian/changelog" || log "warning: source is not $VERSION"
    (cd "$src" && patch_reflect2 && patch_oom_adj)
    touch "$src/.chaoslab-patched"
  fi
  local what=() b
  for b in "${BINARIES[@]}"; do [ -x "$BIN/$b" ] || what+=("cmd/$b"); done
  if [ ${#what[@]} -gt 0 ]; then
    # One make for all: the generated files are made once. nice 19: the machine is shared.
    log "building ${what[*]} (nice 19; about 8 minutes for the first on 2 cores)"
    (cd "$src" && nice -n 19 make WHAT="${what[*]}" KUBE_BUILD_PLATFORMS=linux/amd64)
    for b in "${BINARIES[@]}"; do
      [ -x "$BIN/$b" ] || { cp "$src/_output/local/bin/linux/amd64/$b" "$BIN/$b.tmp" && mv "$BIN/$b.tmp" "$BIN/$b"; }
    done
  fi
  build_images "$src"
  log "build done: $(ls "$BIN" | tr '\n' ' ')"
}

build_images() {
  local src=$1 tmp
  if ! docker image inspect "$PAUSE_IMAGE" >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    gcc -Os -static -o "$tmp/pause" "$src/build/pause/linux/pause.c"
    tar -C "$tmp" -cf - pause | docker import -c 'ENTRYPOINT ["/pause"]' - "$PAUSE_IMAGE" >/dev/null
    rm -rf "$tmp"
  fi
  if ! docker image inspect "$BUSYBOX_IMAGE" >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    mkdir -p "$tmp/bin" "$tmp/tmp" "$tmp/etc"
    cp /bin/busybox "$tmp/bin/busybox"
    local a
    for a in $("$tmp/bin/busybox" --list); do
      [ "$a" = busybox ] || ln -s busybox "$tmp/bin/$a"
    done
    echo 'root:x:0:0:root:/:/bin/sh' >"$tmp/etc/passwd"
    tar -C "$tmp" -cf - . | docker import -c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' - "$BUSYBOX_IMAGE" >/dev/null
    rm -rf "$tmp"
  fi
}

# --- cluster lifecycle --------------------------------------------------------------------------

KUBECONFIG_FILE="$STATE/admin.kubeconfig"

pidfile() { echo "$STATE/run/$1.pid"; }

is_running() {
  local p
  p=$(cat "$(pidfile "$1")" 2>/dev/null) || return 1
  kill -0 "$p" 2>/dev/null
}

start_daemon() {
  local name=$1; shift
  is_running "$name" && return 0
  mkdir -p "$STATE/run" "$STATE/log"
  # setsid: the daemon outlives this script and `down` can signal it by its own pid.
  setsid "$@" >>"$STATE/log/$name.log" 2>&1 </dev/null &
  echo $! >"$(pidfile "$name")"
}

stop_daemon() {
  local name=$1 p i
  p=$(cat "$(pidfile "$name")" 2>/dev/null) || return 0
  if kill -0 "$p" 2>/dev/null; then
    kill -TERM "$p" 2>/dev/null || true
    for i in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  fi
  rm -f "$(pidfile "$name")"
}

make_certs() {
  local pki="$STATE/pki"
  [ -f "$pki/admin.crt" ] && return 0
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout ca.key -out ca.crt -subj "/CN=chaoslab-k8s-ca" 2>/dev/null
    cat >san.cnf <<EOF
[req]
distinguished_name=dn
[dn]
[ext]
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.96.0.1,DNS:$NODE_NAME
extendedKeyUsage=serverAuth,clientAuth
EOF
    sign() { # name subject
      openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
        -extfile san.cnf -extensions ext -out "$1.crt" 2>/dev/null
      rm -f "$1.csr"
    }
    sign apiserver "/CN=kube-apiserver"
    sign admin "/O=system:masters/CN=chaoslab-admin"
    sign kubelet "/O=system:nodes/CN=system:node:$NODE_NAME"
    sign controller-manager "/CN=system:kube-controller-manager"
    sign scheduler "/CN=system:kube-scheduler"
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

write_kubeconfig() { # file cert-name user
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: chaoslab
  cluster:
    certificate-authority: $STATE/pki/ca.crt
    server: https://127.0.0.1:$API_PORT
users:
- name: $3
  user:
    client-certificate: $STATE/pki/$2.crt
    client-key: $STATE/pki/$2.key
contexts:
- name: chaoslab
  context: {cluster: chaoslab, user: $3}
current-context: chaoslab
EOF
}

wait_for() { # seconds description command...
  local secs=$1 what=$2 i; shift 2
  for i in $(seq 1 $((secs * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  log "timed out after ${secs}s waiting for $what (logs in $STATE/log)"
  return 1
}

cmd_up() {
  cmd_build
  mkdir -p "$STATE"/{run,log,etcd,kubelet,manifests}
  make_certs
  write_kubeconfig "$KUBECONFIG_FILE" admin chaoslab-admin
  write_kubeconfig "$STATE/controller-manager.kubeconfig" controller-manager system:kube-controller-manager
  write_kubeconfig "$STATE/scheduler.kubeconfig" scheduler system:kube-scheduler
  write_kubeconfig "$STATE/kubelet.kubeconfig" kubelet "system:node:$NODE_NAME"
  start_daemon etcd /usr/bin/etcd --name chaoslab --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "chaoslab=http://127.0.0.1:$ETCD_PEER_PORT"
  local pki="$STATE/pki"
  start_daemon apiserver "$BIN/kube-apiserver" --advertise-address=127.0.0.1 --bind-address=127.0.0.1 \
    --secure-port="$API_PORT" --insecure-port=0 --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --client-ca-file="$pki/ca.crt" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --kubelet-client-certificate="$pki/apiserver.crt" --kubelet-client-key="$pki/apiserver.key" \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc --authorization-mode=Node,RBAC \
    --service-cluster-ip-range=10.96.0.0/16 --allow-privileged=true \
    --enable-admission-plugins=NamespaceLifecycle,LimitRanger,DefaultStorageClass,ResourceQuota \
    --disable-admission-plugins=ServiceAccount
  wait_for 120 "the apiserver" kubectl --kubeconfig "$KUBECONFIG_FILE" get --raw=/readyz
  # The bootstrap role system:kube-controller-manager grants only what the manager needs for
  # itself: each controller is meant to run as its own service account, whose tokens come from
  # the serviceaccount-token controller that is off here. Run as one identity, it needs all.
  wait_for 60 "the controller-manager binding" sh -c "kubectl --kubeconfig '$KUBECONFIG_FILE' create clusterrolebinding \
    chaoslab-controller-manager --clusterrole=cluster-admin --user=system:kube-controller-manager --dry-run=client -o yaml \
    | kubectl --kubeconfig '$KUBECONFIG_FILE' apply -f -"
  start_daemon controller-manager "$BIN/kube-controller-manager" --bind-address=127.0.0.1 --port=0 \
    --kubeconfig="$STATE/controller-manager.kubeconfig" --controllers='*,-serviceaccount-token' \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --use-service-account-credentials=false --leader-elect=false --cert-dir="$STATE/run/controller-manager"
  start_daemon scheduler "$BIN/kube-scheduler" --bind-address=127.0.0.1 --port=0 \
    --kubeconfig="$STATE/scheduler.kubeconfig" --leader-elect=false --cert-dir="$STATE/run/scheduler"
  cat >"$STATE/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
healthzBindAddress: 127.0.0.1
healthzPort: 10258
port: 10250
readOnlyPort: 0
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
makeIPTablesUtilChains: false
staticPodPath: $STATE/manifests
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: AlwaysAllow}
tlsCertFile: $pki/kubelet.crt
tlsPrivateKeyFile: $pki/kubelet.key
evictionHard: {}
imageGCHighThresholdPercent: 100
resolvConf: ""
EOF
  start_daemon kubelet "$BIN/kubelet" --config="$STATE/kubelet-config.yaml" --kubeconfig="$STATE/kubelet.kubeconfig" \
    --hostname-override="$NODE_NAME" --node-ip=127.0.0.1 --container-runtime=docker \
    --pod-infra-container-image="$PAUSE_IMAGE" --root-dir="$STATE/kubelet" \
    --docker-endpoint=unix:///var/run/docker.sock --network-plugin=""
  wait_for 120 "node $NODE_NAME Ready" sh -c \
    "kubectl --kubeconfig '$KUBECONFIG_FILE' get node '$NODE_NAME' -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
  wait_for 60 "the default service account" kubectl --kubeconfig "$KUBECONFIG_FILE" get serviceaccount default
  log "up: export KUBECONFIG=$KUBECONFIG_FILE"
}

cmd_down() {
  stop_daemon kubelet
  # Pod containers the kubelet made (dockershim names them k8s_*); nothing else of Docker's.
  local ids
  ids=$(docker ps -aq --filter 'label=io.kubernetes.docker.type' 2>/dev/null || true)
  [ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1 || true
  stop_daemon scheduler
  stop_daemon controller-manager
  stop_daemon apiserver
  stop_daemon etcd
  # The kubelet mounts tmpfs volumes (service account tokens) under its root dir.
  if [ -d "$STATE/kubelet" ]; then
    grep " $STATE/kubelet" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  fi
  if [ "${1:-}" = "--purge" ]; then rm -rf "$STATE"; fi
  log "down"
}

cmd_status() {
  local n
  for n in etcd apiserver controller-manager scheduler kubelet; do
    if is_running "$n"; then echo "$n running (pid $(cat "$(pidfile "$n")"))"; else echo "$n stopped"; fi
  done
}

# Sourced (tests of deb_src_stanzas), the script only defines its functions.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-}" in
    build) cmd_build ;;
    up) cmd_up ;;
    down) shift; cmd_down "$@" ;;
    status) cmd_status ;;
    env) echo "export KUBECONFIG=$KUBECONFIG_FILE" ;;
    *) echo "usage: $0 build|up|down [--purge]|status|env" >&2; exit 2 ;;
  esac
fi
