"""`python -m cacheproxy_operator` is the same as `cacheproxy-operator`."""

import sys

from cacheproxy_operator.cli import main

sys.exit(main())
