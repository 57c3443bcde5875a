"""The NATS permission table (bus.permissions) and what `up` renders from it (embedded.nats_auth).

- each role's nats-server permissions block: hosts only their own subjects plus allow_responses,
  the operator all hosts' commands, logs only workload.logs, data everything but runtime.>;
- the rendered server config puts control identities in CONTROL and the data identity in DATA (with
  JetStream), one user per host, no anonymous user; config and credentials files are 0600;
- docs/security.md names every subject of the table (the docs describe this one table).
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

from wasmfleet.bus import permissions
from wasmfleet.embedded import nats_auth

DOCS = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def test_host_identity_names_only_its_own_subjects() -> None:
    block = permissions.host("h1").to_server_config()
    assert block == {
        "publish": {"allow": ["runtime.operator.heartbeat.h1", "runtime.operator.leaving.h1"]},
        "subscribe": {"allow": ["runtime.host.h1.>"]},
        "allow_responses": True,
    }
    assert permissions.host_user("h1") == "host-h1"


def test_operator_logs_and_data_identities() -> None:
    assert permissions.operator().to_server_config() == {
        "publish": {"allow": ["runtime.host.*.>"]},
        "subscribe": {"allow": ["runtime.operator.heartbeat.*", "runtime.operator.leaving.*", "_INBOX.>"]},
    }
    assert permissions.logs().to_server_config()["publish"] == {"allow": ["runtime.host.*.workload.logs"]}
    data = permissions.data()
    assert data.account == permissions.DATA_ACCOUNT
    assert data.to_server_config() == {"publish": {"allow": [">"], "deny": ["runtime.>"]},
                                       "subscribe": {"allow": [">"], "deny": ["runtime.>"]}}


def test_rendered_config_separates_accounts_and_is_private(tmp_path: Path) -> None:
    auth = nats_auth.write(tmp_path, host="127.0.0.1", port=4222, host_ids=["h1", "h2"])
    config = json.loads(auth.config_path.read_text())
    control = {u["user"] for u in config["accounts"]["CONTROL"]["users"]}
    data = config["accounts"]["DATA"]
    assert control == {"operator", "logs", "host-h1", "host-h2"}
    assert [u["user"] for u in data["users"]] == ["data"] and data["jetstream"] == "enabled"
    assert "no_auth_user" not in config and "jetstream" not in config["accounts"]["CONTROL"]
    for path in (auth.config_path, auth.credentials_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert nats_auth.read_login(tmp_path.parent, "logs") is None  # no up data dir there
    again = nats_auth.write(tmp_path, host="127.0.0.1", port=4222, host_ids=["h1"])
    assert again.host("h1").password != auth.host("h1").password  # fresh every run


def test_docs_describe_the_table() -> None:
    text = DOCS.read_text()
    for user, perms in permissions.table(["HOSTID"]).items():
        assert f"`{user.replace('HOSTID', '<hostID>')}`" in text, user
        for subject in (*perms.publish, *perms.subscribe, *perms.publish_deny):
            if subject != ">":
                assert f"`{subject.replace('HOSTID', '<hostID>')}`" in text, (user, subject)
