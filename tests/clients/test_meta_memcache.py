"""meta-memcache (meta protocol): typical usage, leases (``get_or_lease``), CAS, recache and
stale-while-revalidate give the same results through the proxy as direct."""

from __future__ import annotations

from meta_memcache import (
    CacheClient,
    LeasePolicy,
    RecachePolicy,
    ServerAddress,
    StalePolicy,
    connection_pool_factory_builder,
)

from tests.clients.conftest import CasNames, Pair, host_port

NO_WAIT = LeasePolicy(ttl=30, miss_retries=1, miss_retry_wait=0.01, miss_max_retry_wait=0.01)


def scenario(addr: str) -> list:
    host, port = host_port(addr)
    client = CacheClient.cache_client_from_servers(
        servers=[ServerAddress(host=host, port=port)],
        connection_pool_factory_fn=connection_pool_factory_builder(recv_timeout=5, connection_timeout=5))
    cas = CasNames()
    seen: list = []

    def got_cas(result: tuple) -> tuple:
        value, token = result
        return value, cas(token)

    seen.append(client.set("a", b"1", ttl=100))
    seen.append(client.get("a"))
    seen.append(client.set("s", "text", ttl=100))
    seen.append(client.set("i", 42, ttl=100))
    seen.append(sorted((k.key, v) for k, v in client.multi_get(["a", "s", "i", "nope"]).items()))
    value, token = client.get_cas("a")
    seen.append((value, cas(token)))
    seen.append(client.set("a", b"2", ttl=100, cas_token=token))
    seen.append(client.set("a", b"3", ttl=100, cas_token=token))
    seen.append(got_cas(client.get_cas("a")))
    seen.append(client.touch("a", 300))
    seen.append(client.touch("nope", 300))
    seen.append(client.delta("n", 1))
    seen.append(client.delta_initialize("n", 1, initial_value=10, initial_ttl=100))
    seen.append(client.delta_and_get("n", 5))
    seen.append(client.delete("s"))
    seen.append(client.get("s"))
    # the lease flow of get_or_lease: a miss wins the lease, the winner fills it with its CAS
    seen.append(got_cas(client.get_or_lease_cas("lease", NO_WAIT)))
    seen.append(client.get_or_lease("lease", NO_WAIT))  # lease taken: retries, then gives up
    _, token = client.get_or_lease_cas("lease2", NO_WAIT)
    seen.append(client.set("lease2", b"filled", ttl=100, cas_token=token))
    seen.append(client.get_or_lease("lease2", NO_WAIT))
    # a value set without a lease is what the next get_or_lease returns
    seen.append(client.set("k", b"filled", ttl=100))
    seen.append(got_cas(client.get_or_lease_cas("k", NO_WAIT)))
    seen.append(client.get("k"))
    # recache: an item whose TTL is below the policy's wins one client a refresh
    seen.append(client.get("k", recache_policy=RecachePolicy(ttl=200)))
    seen.append(client.get("k", recache_policy=RecachePolicy(ttl=200)))
    # stale-while-revalidate: an invalidated item is served stale, one client wins the refill
    seen.append(client.delete("k", stale_policy=StalePolicy(mark_stale_on_deletion_ttl=30)))
    seen.append(got_cas(client.get_or_lease_cas("k", NO_WAIT)))
    seen.append(got_cas(client.get_or_lease_cas("k", NO_WAIT)))
    seen.append(client.set("k", b"fresh", ttl=100))
    seen.append(client.get("k"))
    seen.append(client.invalidate("k"))
    seen.append(client.get("k"))
    return seen


def test_meta_memcache_same_through_proxy(pair: Pair) -> None:
    assert scenario(pair.proxy) == scenario(pair.direct)
