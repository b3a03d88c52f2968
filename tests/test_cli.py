"""The command line and the config file."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cacheproxy.cli import parse_args
from cacheproxy.config import load


def test_flags_override_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("listen: 0.0.0.0:1\nl1: unix:/tmp/x.sock\nbatching: {enabled: true, max_connections: 3}\n")
    c = load(cfg, {"listen": "127.0.0.1:2", "l2": None})
    assert (c.listen, c.l1, c.batching.max_connections, c.orca_name) == ("127.0.0.1:2", "unix:/tmp/x.sock", 3, "l1only")
    assert load(None, {"l2": "127.0.0.1:5"}).orca_name == "l1l2"


@pytest.mark.parametrize(("text", "message"), [
    ("bogus: 1\n", "unknown config keys: bogus"),
    ("l1: nowhere\n", "is not HOST:PORT"),
    ("orca: l1l2\n", "needs an l2"),
    ("batching: {speed: 1}\n", "unknown batching keys"),
])
def test_bad_config_is_refused_with_a_message(tmp_path, text, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    run = subprocess.run([sys.executable, "-m", "cacheproxy", "--config", str(cfg)], capture_output=True, text=True,
                         timeout=30)
    assert run.returncode == 2
    assert message in run.stderr


def test_help_lists_the_contract_flags():
    out = subprocess.run([sys.executable, "-m", "cacheproxy", "--help"], capture_output=True, text=True, timeout=30)
    for flag in ("--listen", "--l1", "--l2", "--admin", "--config", "--batch-listen", "--workers"):
        assert flag in out.stdout


def test_batching_is_the_default_and_the_classic_layout_one_flag_away(tmp_path):
    assert load(None).batching.enabled is True
    overrides = {k: v for k, v in vars(parse_args(["--no-batching"])).items() if k != "config"}
    cfg = tmp_path / "c.yaml"
    cfg.write_text("batching: {max_connections: 3}\n")
    c = load(cfg, overrides)
    assert (c.batching.enabled, c.batching.max_connections) == (False, 3)
    assert load(cfg, {k: v for k, v in vars(parse_args([])).items() if k != "config"}).batching.enabled is True


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--config-map", "cache-config"], {}, "needs a config file (--config)"),
    (["--config-map", "Not_A_Name"], {}, "config_map must be [NAMESPACE/]NAME"),
    (["--config-map", "cache-config", "--config", "{cfg}"], {}, "needs KUBERNETES_SERVICE_HOST"),
    (["--config", "{cfg}"], {"CACHEPROXY_CONFIGMAP": "cache-config", "KUBERNETES_SERVICE_HOST": "10.0.0.1",
                             "KUBERNETES_SERVICE_PORT": "443", "CACHEPROXY_SERVICEACCOUNT_DIR": "/nonexistent"},
     "no namespace given and none readable"),
])
def test_the_configmap_watch_is_refused_at_start_without_what_it_needs(tmp_path, args, env, message):
    """--config-map / CACHEPROXY_CONFIGMAP: a missing file, API server address or namespace is an exit
    with a message, not a proxy that silently never watches."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("log_level: info\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "CACHEPROXY_"))}
    run = subprocess.run([sys.executable, "-m", "cacheproxy", *(a.format(cfg=cfg) for a in args)],
                         capture_output=True, text=True, timeout=30, env={**clean, **env})
    assert run.returncode == 2, run.stderr
    assert message in run.stderr
