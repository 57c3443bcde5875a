"""The transformer (componentize-py): a wasmcloud:messaging handler on the "default" host group.

For each message: the body, upper-cased and reversed word by word, is published to the message's
reply subject. A message without reply-to (a plain publish) is published transformed to
`<subject>.done`, so `nats sub 'demo.>'` shows the handler at work.
"""

from wit_world import exports
from wit_world.imports import consumer
from wit_world.imports.types import BrokerMessage


def transform(body: bytes) -> bytes:
    text = body.decode("utf-8", errors="replace")
    return " ".join(reversed(text.upper().split())).encode()


class Handler(exports.Handler):
    def handle_message(self, msg: BrokerMessage) -> None:
        # An Err raised by publish propagates: the host counts the message as failed.
        target = msg.reply_to or f"{msg.subject}.done"
        consumer.publish(BrokerMessage(subject=target, body=transform(msg.body), reply_to=None))
