"""Render the chart's NATS permission table (bus.permissions.role_table) into
deploy/chart/files/nats-permissions.json, which the chart's nats.conf template reads.

The table lives in one place, bus/permissions.py; this file is its rendering for Helm (templates
cannot import Python). tests/deploy/test_chart_security.py fails when the two differ.

    python scripts/chart_permissions.py           # rewrite the file
    python scripts/chart_permissions.py --check   # exit 1 (and say so) when it is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from wasmfleet.bus import permissions

OUTPUT = Path(__file__).resolve().parents[1] / "deploy" / "chart" / "files" / "nats-permissions.json"


def document() -> dict[str, Any]:
    """accounts (JetStream: true, a map of account limits, or false) and users (role -> account, permissions)."""
    return {
        "_generated": "by scripts/chart_permissions.py from src/wasmfleet/bus/permissions.py; do not edit",
        "accounts": {
            permissions.CONTROL_ACCOUNT: {"jetstream": dict(permissions.CONTROL_JETSTREAM)},
            permissions.DATA_ACCOUNT: {"jetstream": True},
        },
        "users": {
            role: {"account": perms.account, "permissions": perms.to_server_config()}
            for role, perms in permissions.role_table().items()
        },
    }


def text() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        if not OUTPUT.is_file() or OUTPUT.read_text() != text():
            print(f"{OUTPUT} is stale: run python scripts/chart_permissions.py", file=sys.stderr)
            return 1
        return 0
    if argv:
        print("usage: chart_permissions.py [--check]", file=sys.stderr)
        return 2
    OUTPUT.write_text(text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
