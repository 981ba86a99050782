"""docker-compose.scale.yml and deploy/nginx.conf say what the server and docs/scaling.md need."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from gigaam_api.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _scale_compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.scale.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_replicas_share_the_cache_wait_for_the_weights_and_stop_after_their_grace() -> None:
    services = _scale_compose()["services"]
    replica = services["gigaam-api"]
    assert replica["deploy"]["replicas"] >= 2
    assert "ports" not in replica  # only the balancer is published
    assert replica["environment"]["CACHE_DIR"].startswith("/data/")
    assert replica["volumes"] == ["gigaam-api-data:/data"]
    assert replica["depends_on"]["download-weights"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["download-weights"]["command"] == ["download"]
    grace_s = float(replica["environment"]["SHUTDOWN_GRACE_S"])
    stop_s = float(replica["stop_grace_period"].removesuffix("s"))
    assert stop_s >= grace_s + 5  # Docker must not kill a replica in the middle of its stop
    assert "/ready" in replica["healthcheck"]["test"][-1]
    assert services["nginx"]["volumes"] == ["./deploy/nginx.conf:/etc/nginx/nginx.conf:ro"]
    assert services["nginx"]["ports"] == ["8000:8000"]


def test_the_default_grace_fits_dockers_default_stop_timeout() -> None:
    assert Settings.model_fields["shutdown_grace_s"].default + 5 <= 10


def test_nginx_moves_on_after_503_and_errors_and_never_marks_a_full_replica_down() -> None:
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    directives = re.findall(r"^\s*proxy_next_upstream (.+);", conf, flags=re.MULTILINE)
    assert directives
    for directive in directives:
        assert {"error", "timeout", "http_503", "non_idempotent"} <= set(directive.split())
    assert re.findall(r"^\s*server \S+ max_fails=0;", conf, flags=re.MULTILINE)
    assert "proxy_buffering off;" in conf
    assert re.search(r"client_max_body_size (\d+)m;", conf)
    limit_mb = int(re.search(r"client_max_body_size (\d+)m;", conf)[1])  # type: ignore[index]
    assert limit_mb == Settings.model_fields["max_upload_mb"].default
