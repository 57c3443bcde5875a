"""A library component (componentize-py) exporting wasmfleet:demo/text@0.1.0 to the other
components of its workload (text-front-js calls it). It imports nothing from the host's HTTP."""

from wit_world import exports
from wit_world.exports.text import Summary


class Text(exports.Text):
    def transform(self, s: str) -> str:
        return s.upper()[::-1]

    def summarize(self, data: bytes) -> Summary:
        return Summary(length=len(data), checksum=sum(data) & 0xFFFFFFFF, words=len(data.split()))

    def rotate(self, s: str, n: int) -> str:
        for _ in range(n):
            s = s[1:] + s[:1]
        return s
