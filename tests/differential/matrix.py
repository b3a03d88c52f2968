"""The command x flag scripts of the layout matrix: each runs with its items in L1 (and L2), only
in L2, or nowhere (see layouts.py), in every layout, and must get memcached's bytes.

Items: ``k`` = ``hello`` (flags 5, TTL 100) and ``n`` = ``10`` (flags 0, TTL 100). Each script
does one command (or one short protocol flow) and then *observes* the state it left: a plain
``mg``, a text ``get``/``gets``, so a write that reached only one level, a TTL that changed in
only one level or a lease that lives in the wrong place shows up as a mismatch.

Normalised as in the rest of the corpus (harness.py): CAS values are renamed by order of first
appearance (each level numbers items on its own; the rule is that the CAS a client sees is
L2's, and its equality structure is checked), ``t`` is bucketed to 10 s and ``l`` floored to
10 s. Nothing else is normalised.
"""

from __future__ import annotations

from tests.differential.harness import Script, Step
from tests.differential.layouts import Item
from tests.differential.scripts import get, one, quiet, shaped

ITEMS = (Item(b"k", b"hello", 5, 100), Item(b"n", b"10", 0, 100))
K_B64 = b"aw=="  # base64 of "k"

OBSERVE = (one(b"mg k v f t s\r\n"), get(b"get k\r\n"), one(b"mg n v f t\r\n"))
OBSERVE_CAS = (*OBSERVE, get(b"gets k n\r\n"), one(b"mg k c\r\n"))

MATRIX: list[Script] = []


def case(name: str, *steps: Step, observe: tuple[Step, ...] = OBSERVE) -> None:
    MATRIX.append(Script(name, (*steps, *observe)))


# ---------------------------------------------------------------- mg, one flag at a time
for flags in (b"", b"v", b"f", b"s", b"t", b"k", b"O123", b"c", b"h", b"l", b"u", b"v u h", b"v k O9 f s t",
              b"v c t f", b"h l t", b"c h"):
    label = flags.decode().replace(" ", "_") or "none"
    case(f"mg_{label}", one(b"mg k %s\r\n" % flags), one(b"mg k %s\r\n" % flags), one(b"mg n %s\r\n" % flags))
case("mg_b", one(b"mg " + K_B64 + b" b v k f\r\n"), one(b"mg " + K_B64 + b" b c\r\n"))
case("mg_q", quiet(b"mg k v q\r\nmg zz v q\r\nmg k q k\r\nmg n q c\r\n"))
case("mg_q_T", quiet(b"mg k q T300\r\nmg zz q T300\r\n"), one(b"mg k t\r\n"))
case("mg_T", one(b"mg k T300 t v\r\n"), one(b"mg k t\r\n"), get(b"get k\r\n"), one(b"mg n T300\r\n"),
     one(b"mg n t v\r\n"))
case("mg_T_expires", one(b"mg k T-1\r\n"), get(b"get k\r\n"), one(b"mg k v\r\n"))
case("mg_T_b", one(b"mg " + K_B64 + b" b T300 t\r\n"), one(b"mg k t\r\n"))
case("mg_N", one(b"mg k N30 v c t\r\n"), one(b"mg k N30 v c t\r\n"), one(b"mg k v t\r\n"),
     get(b"get k\r\n"), one(b"mg zz N30 s t\r\n"), one(b"mg zz v\r\n"))
case("mg_R", one(b"mg k R200 v c t\r\n"), one(b"mg k R200 v c t\r\n"), one(b"mg k v\r\n"),
     one(b"mg k R50 v\r\n"))
case("mg_E", one(b"mg k E5 v\r\n"), one(b"mg zz N30 E5 v\r\n"))
case("mg_errors", one(b"mg k zz\r\n"), one(b"mg k v v\r\n"), one(b"mg k T\r\n"), one(b"mg k N\r\n"))

# ---------------------------------------------------------------- leases (meta-memcache get_or_lease)
case("lease_fill_with_cas", one(b"mg k N30 v c t\r\n"), one(b"ms k 6 C<C1> T100\r\nfilled\r\n"),
     one(b"mg k v c t\r\n"), get(b"get k\r\n"), observe=OBSERVE_CAS)
case("lease_after_set", one(b"ms k 6 T100\r\nfilled\r\n"), one(b"mg k v c N30 t\r\n"),
     get(b"get k\r\n"), observe=OBSERVE_CAS)
case("lease_two_clients", one(b"mg k N30 v c t\r\n"), Step(b"mg k N30 v c t\r\n", "L", conn=1),
     one(b"ms k 6 C<C1> T100\r\nfilled\r\n"), Step(b"mg k N30 v t\r\n", "L", conn=1))
case("stale_while_revalidate", one(b"mg k c\r\n"), one(b"md k I T30\r\n"), one(b"mg k v c t\r\n"),
     one(b"mg k v c t\r\n"), get(b"get k\r\n"), one(b"ms k 3 C<C1> I\r\nold\r\n"), one(b"mg k v t c\r\n"),
     one(b"ms k 3 T100\r\nnew\r\n"), one(b"mg k v t c\r\n"), observe=OBSERVE_CAS)

# ---------------------------------------------------------------- meta CAS
case("ms_C_from_mg_c", one(b"mg k c v\r\n"), one(b"ms k 2 C<C1>\r\nhi\r\n"), one(b"mg k v\r\n"),
     one(b"ms k 2 C<C1>\r\nho\r\n"), observe=OBSERVE_CAS)
case("ms_C_from_gets", get(b"gets k\r\n"), one(b"ms k 2 C<C1> c\r\nhi\r\n"), one(b"mg k c\r\n"),
     observe=OBSERVE_CAS)
case("md_C", one(b"mg k c\r\n"), one(b"md k C1\r\n"), one(b"md k C<C1>\r\n"), observe=OBSERVE_CAS)
case("ma_C", one(b"mg n c\r\n"), one(b"ma n C<C1> v c\r\n"), one(b"ma n C<C1> v\r\n"), observe=OBSERVE_CAS)

# ---------------------------------------------------------------- ms, one flag or mode at a time
for flags in (b"", b"T0 F3", b"T300 F7", b"T-1", b"c", b"k O5", b"I", b"MS", b"ME", b"MA", b"MP", b"MR", b"MX",
              b"c k t", b"s"):
    label = flags.decode().replace(" ", "_") or "plain"
    case(f"ms_{label}", one(b"ms k 2 %s\r\nhi\r\n" % flags), observe=OBSERVE_CAS)
case("ms_q", quiet(b"ms k 2 q\r\nhi\r\nms k 2 q ME\r\nho\r\nms zz 2 q MR\r\nhi\r\n"), observe=OBSERVE_CAS)
case("ms_b", one(b"ms " + K_B64 + b" 2 b T0\r\nhi\r\n"))
case("ms_invalid", one(b"ms k 2 zz\r\nhi\r\n"), one(b"ms k 2 E5\r\nhi\r\n"))

# ---------------------------------------------------------------- md
for flags in (b"", b"k O1", b"I", b"I T30", b"x", b"C1"):
    label = flags.decode().replace(" ", "_") or "plain"
    case(f"md_{label}", one(b"md k %s\r\n" % flags), one(b"mg k v c t\r\n"), observe=OBSERVE_CAS)
case("md_q", quiet(b"md k q\r\nmd k q\r\nmd zz q k\r\n"))
case("md_b", one(b"md " + K_B64 + b" b\r\n"))

# ---------------------------------------------------------------- ma
for flags in (b"", b"v", b"N0 J5 v", b"D3 MD v", b"MI D2 v t c", b"N100 J1 t v", b"T300 v t", b"MX",
              b"D-1", b"k O3 v"):
    label = flags.decode().replace(" ", "_") or "plain"
    case(f"ma_{label}", one(b"ma n %s\r\n" % flags), one(b"ma k %s\r\n" % flags), one(b"ma zz %s\r\n" % flags),
         observe=OBSERVE_CAS)
case("ma_q", quiet(b"ma n q\r\nma zz q\r\nma n q v\r\n"), observe=OBSERVE_CAS)
case("ma_b", one(b"ma bg== b v\r\n"))

# ---------------------------------------------------------------- me, mn
case("me", shaped(b"me k\r\n", "L", r"(ME k exp=\S+ la=\d+ cas=\d+ fetch=\S+ cls=\d+ size=\d+|EN)\r\n"),
     one(b"me zz\r\n"))
case("mn", one(b"mn\r\n"), quiet(b"mg zz q\r\n"))

# ---------------------------------------------------------------- text commands
setk = b"%s k 0 300 2%s\r\nhi\r\n"
for command in (b"set", b"add", b"replace", b"append", b"prepend"):
    case(f"text_{command.decode()}", one(setk % (command, b"")), observe=OBSERVE_CAS)
    case(f"text_{command.decode()}_noreply", quiet(setk % (command, b" noreply")), observe=OBSERVE_CAS)
case("text_get", get(b"get k\r\n"), get(b"get k zz n\r\n"), one(b"mg k h t\r\n"))
case("text_gets", get(b"gets k\r\n"), get(b"gets k zz n\r\n"), one(b"mg k c\r\n"), observe=OBSERVE_CAS)
case("text_gat", get(b"gat 300 k zz\r\n"), one(b"mg k t\r\n"), get(b"get k\r\n"))
case("text_gats", get(b"gats 300 k n\r\n"), one(b"mg k t\r\n"), one(b"mg n t\r\n"), observe=OBSERVE_CAS)
case("text_gat_expire", get(b"gat -1 k\r\n"), get(b"get k\r\n"))
case("text_touch", one(b"touch k 300\r\n"), one(b"touch zz 300\r\n"), one(b"mg k t\r\n"))
case("text_cas", get(b"gets k\r\n"), one(b"cas k 0 0 2 <C1>\r\nhi\r\n"), one(b"cas k 0 0 2 <C1>\r\nho\r\n"),
     observe=OBSERVE_CAS)
case("text_cas_from_mg_c", one(b"mg k c\r\n"), one(b"cas k 0 0 2 <C1>\r\nhi\r\n"), observe=OBSERVE_CAS)
case("text_incr_decr", one(b"incr n 5\r\n"), one(b"decr n 2\r\n"), one(b"incr k 1\r\n"), one(b"incr zz 1\r\n"),
     observe=OBSERVE_CAS)
case("text_incr_noreply", quiet(b"incr n 5 noreply\r\ndecr n 1 noreply\r\n"))
case("text_delete", one(b"delete k\r\n"), one(b"delete k\r\n"), quiet(b"delete n noreply\r\n"))
case("text_flush_all", one(b"flush_all\r\n"), get(b"get k n\r\n"))
case("pipelined_mix", Step(b"set k 0 0 1\r\na\r\nget k\r\nmg k c v\r\nms k 1 C<C1>\r\nb\r\n"
                           b"mg k v\r\ndelete k\r\nget k\r\nmg k N30 v\r\n", "L E L L L L E L"))


# ---------------------------------------------------------------- documented differences
# Each is (script, layouts, states, why): the proxy is expected to answer differently there, and
# test_matrix marks them strict xfail, so a change that removes one is noticed (and the doc
# docs/memcached-behaviour.md, "Where the proxy differs", is updated with it).
DIFFERENCES: list[tuple[Script, tuple[str, ...], tuple[str, ...], str]] = [
    (Script("stale_item_text_get_takes_win", (one(b"md k I T30\r\n"), get(b"get k\r\n"),
                                              one(b"mg k v c t\r\n"))),
     ("l1only", "batched", "l1l2", "l1l2-batched", "l1l2-locked", "chunked", "ring", "batch-port"), ("l1", "l2"),
     "text get is read with mg, and memcached hands the win token of a stale item to any mg"),
    (Script("l1l2_h_after_l1_read_served_by_l2", (one(b"mg k v\r\n"), one(b"mg k c h\r\n"))),
     ("l1l2", "l1l2-batched", "l1l2-locked", "batch-port"), ("l1",),
     "an mg with c is served by L2, whose copy did not see the read L1 served"),
]
