"""conftest.py for the copy of python-binary-memcached 0.33.0's ``test/`` that
``tests/clients/upstream`` runs (copied there as ``conftest.py``; never imported by the repo's suite).

The sdist ships ``test/*.py`` but not upstream's ``test/conftest.py``, which starts memcacheds on
fixed ports. Here the target is started by the outer test and its addresses come in the environment:
``MEMCACHED_HOST`` (the tests' host) and ``BM_SASL_PORT`` (a target that requires SASL PLAIN for
user ``user``, password ``password``). ``test_ipv6.py`` and ``test_tls.py`` are not run, so neither
``memcached_ipv6`` nor ``IPV6_PORT`` is defined.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MEMCACHED_HOST", "127.0.0.1")


@pytest.fixture(scope="session")
def memcached_sasl() -> tuple[int, str, str]:
    return int(os.environ["BM_SASL_PORT"]), "user", "password"
