"""conftest.py for pylibmc 1.6.3's unpacked sdist, as ``tests/clients/upstream`` runs it (copied to
the sdist's root as ``conftest.py``; never imported by the repo's suite).

``pylibmc.test.make_test_client`` already takes the target from ``MEMCACHED_HOST`` /
``MEMCACHED_PORT``, but two upstream tests hard-code 127.0.0.1:11211: ``PylibmcTestCase``'s class
attributes (used to build the address in ``test_autoconf``) and ``autoconf.elasticache()``'s default
address (``test_no_autoconf``). Both are pointed at the target.
"""

from __future__ import annotations

import os

from pylibmc import autoconf

from tests import PylibmcTestCase  # the sdist's tests package (cwd), not the repository's

PylibmcTestCase.memcached_host = os.environ["MEMCACHED_HOST"]
PylibmcTestCase.memcached_port = os.environ["MEMCACHED_PORT"]
_defaults = autoconf.elasticache.__defaults__ or ()
autoconf.elasticache.__defaults__ = (f"{os.environ['MEMCACHED_HOST']}:{os.environ['MEMCACHED_PORT']}",
                                     *_defaults[1:])
