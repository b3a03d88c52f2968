"""The cacheproxy operator: reconciles CacheProxy resources into running, observable cache tiers."""

GROUP = "cacheproxy.io"
VERSION = "v1alpha1"
PLURAL = "cacheproxies"
KIND = "CacheProxy"
FIELD_MANAGER = "cacheproxy-operator"
