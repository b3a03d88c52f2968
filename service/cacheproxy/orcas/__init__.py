"""Orcas: request orchestrators. An orca decides which cache levels a request visits, in what
order, and what the client hears; handlers below it decide how bytes are laid out on a backend.

Every orca offers the same callback interface (see :class:`~cacheproxy.orcas.base.Orca`), so
the per-connection servers (text, meta, binary) work with any of them.
"""
