"""Randomised differential fuzzing: the proxy in one layout against memcached itself.

Where the differential suite (``tests/differential``) replays fixed scripts, this generates them:
random sequences of text, meta and binary commands over a few keys, rich in what clients get
wrong (malformed lines, edge numbers, quiet modes, 2-16 KiB meta lines, binary frames with wrong
lengths), sent whole, split at random or byte by byte. Each sequence goes to a fresh-state
memcached and to the proxy; answers are compared after the harness's normalisation (CAS values by
first appearance, TTLs bucketed). A difference is replayed to see that it is not noise, shrunk
to the fewest commands that still show it, and recorded once per signature (the commands' kinds
and the two answers' shapes) in ``found-<layout>.json``.

Differences memcached makes on purpose (answers it throws away when it closes a connection, an
answer it holds back, a long line it answers or closes on depending on its reads) are classified,
not reported as new (:mod:`fuzz.differential.compare`).

This is a tool, not a test: its comparisons depend on timing (memcached's read boundaries decide
some answers to 2-16 KiB lines), so what it finds becomes a deterministic script in
``tests/differential/scripts.py``. Run it with ``python -m fuzz.differential --help``.

Modules: ``vocabulary`` (keys, values, numbers), ``text_gen``, ``meta_gen`` and ``binary_gen``
(the generators), ``play`` (one sequence against one server), ``compare`` (differences and their
classes), ``search`` (generate, replay, shrink, record).
"""
