"""A library component (componentize-py) exporting wasmfleet:demo/text@0.1.0 to the other
components of its workload (text-front-js calls it). Of the host it imports only wasi:config:
transform() starts with its own config value `prefix`, which shows whose config a host call sees.
Calling transform("trap") traps (the host must discard the request's instances)."""

from wit_world import exports
from wit_world.exports.text import Summary
from wit_world.imports import store


class Text(exports.Text):
    def transform(self, s: str) -> str:
        if s == "trap":
            raise SystemExit(3)
        return (store.get("prefix") or "") + s.upper()[::-1]

    def summarize(self, data: bytes) -> Summary:
        return Summary(length=len(data), checksum=sum(data) & 0xFFFFFFFF, words=len(data.split()))

    def rotate(self, s: str, n: int) -> str:
        for _ in range(n):
            s = s[1:] + s[:1]
        return s
