"""The NATS permission table (bus.permissions) and what `up` renders from it (embedded.nats_auth).

- each role's nats-server permissions block: hosts only their own subjects and inbox prefix plus
  allow_responses and the artifacts bucket's read subjects, the operator all hosts' commands and the
  artifacts bucket's stream (no other stream's creation), logs only workload.logs, data everything
  but runtime.>;
- the rendered server config puts control identities in CONTROL (JetStream limited to one stream, no
  memory storage) and the data identity in DATA (with JetStream), one user per host, no anonymous
  user; config and credentials files are 0600;
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
        "publish": {"allow": ["runtime.operator.heartbeat.h1", "runtime.operator.leaving.h1",
                              "$JS.API.STREAM.INFO.OBJ_wasmfleet-artifacts",
                              "$JS.API.STREAM.MSG.GET.OBJ_wasmfleet-artifacts",
                              "$JS.API.CONSUMER.CREATE.OBJ_wasmfleet-artifacts.*.$O.wasmfleet-artifacts.C.*",
                              "$JS.API.CONSUMER.MSG.NEXT.OBJ_wasmfleet-artifacts.*"]},
        "subscribe": {"allow": ["runtime.host.h1.>", "_HOSTINBOX.h1.>"]},
        "allow_responses": True,
    }
    # A host writes nothing to the bucket and creates no stream.
    writes = ("$O.", "$JS.API.STREAM.CREATE", "$JS.API.STREAM.PURGE")
    assert not any(s.startswith(writes) for s in block["publish"]["allow"])
    assert permissions.host_user("h1") == "host-h1"


def test_operator_logs_and_data_identities() -> None:
    operator = permissions.operator().to_server_config()
    assert operator["subscribe"] == {
        "allow": ["runtime.operator.heartbeat.*", "runtime.operator.leaving.*", "_INBOX.>"]}
    allowed = operator["publish"]["allow"]
    assert allowed[0] == "runtime.host.*.>" and "$O.wasmfleet-artifacts.>" in allowed
    # The one stream it may create is the artifacts bucket's; no wildcard reaches STREAM.CREATE or UPDATE.
    assert [s for s in allowed if ".STREAM." in s and not s.endswith(".OBJ_wasmfleet-artifacts")] == [
        "$JS.API.STREAM.NAMES"]
    assert not any(s.startswith(("$JS.API.STREAM.UPDATE", "$JS.API.STREAM.DELETE", "$JS.>", "$JS.API.>"))
                   for s in allowed)
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
    assert "no_auth_user" not in config
    assert config["accounts"]["CONTROL"]["jetstream"] == {"max_streams": 1, "max_mem": 0}
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
