"""Credentials from a kubeconfig: the current context's server, token or token file, TLS."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import yaml
from sprechzimmer.signaling.kube import load_credentials

pytestmark = pytest.mark.unit


def kubeconfig(path: Path, cluster: dict, user: dict) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "clusters": [
                    {"name": "other", "cluster": {"server": "https://wrong:1"}},
                    {"name": "c", "cluster": cluster},
                ],
                "users": [{"name": "u", "user": user}],
                "contexts": [
                    {"name": "x", "context": {"cluster": "other", "user": "u"}},
                    {"name": "ctx", "context": {"cluster": "c", "user": "u"}},
                ],
                "current-context": "ctx",
            }
        )
    )
    return path


def test_token_and_current_context(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "config", {"server": "http://127.0.0.1:8001/"}, {"token": "t1"})
    creds = load_credentials({"KUBECONFIG": str(path)})
    assert creds.server == "http://127.0.0.1:8001"
    assert creds.headers == {"Authorization": "Bearer t1"}


def test_token_file_relative_to_the_kubeconfig_and_insecure_tls(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t2\n")
    path = kubeconfig(
        tmp_path / "config",
        {"server": "https://api:6443", "insecure-skip-tls-verify": True},
        {"tokenFile": "token"},
    )
    creds = load_credentials({"KUBECONFIG": str(path)})
    assert creds.headers == {"Authorization": "Bearer t2"}
    assert isinstance(creds.ssl, ssl.SSLContext)
    assert creds.ssl.verify_mode == ssl.CERT_NONE


def test_no_credentials_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="no Kubernetes credentials"):
        load_credentials({"KUBECONFIG": str(tmp_path / "missing")})
