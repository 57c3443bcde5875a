"""The failure a host input stream reports to the guest as wasi:io's `last-operation-failed`.

Defined here, below both wasi:io (which maps it) and the plugins (whose streams raise it), so a
plugin's input-stream fails the guest's read with an error instead of trapping.
"""

from __future__ import annotations


class StreamFailed(Exception):
    """The source of an input stream failed (client went away, body too large, backend down...)."""
