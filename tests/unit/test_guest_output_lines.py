"""How a guest's stdout/stderr become log lines when nothing else takes them (wasi:cli on a host).

Checks: a flush is not a line end (wasi-libc flushes after every write, so `printf("x\\n")` arrives
as "x", flush, "\\n", flush and must log one line "x"); several lines in one write log one by one;
the rest without a newline is logged when the stream is dropped; output without newlines is cut
into bounded pieces.
"""

from __future__ import annotations

import logging

import pytest

from wasmfleet.host.wasi import cli


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == cli.log.name]


def test_a_flush_between_a_text_and_its_newline_makes_one_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=cli.log.name)
    out = cli.LogOutput("w/c", logging.INFO)
    for piece in (b"x", b"\n", b"two\nthree\nrest"):
        out.write(piece)
        out.flush()
    assert _lines(caplog) == ["w/c: x", "w/c: two", "w/c: three"]
    out.close()
    assert _lines(caplog)[-1] == "w/c: rest"


def test_output_without_newlines_is_cut_into_bounded_lines(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=cli.log.name)
    out = cli.LogOutput("w/c", logging.INFO)
    out.write(b"a" * (cli.LINE_MAX_BYTES * 2 + 5))
    assert [len(line) for line in _lines(caplog)] == [len("w/c: ") + cli.LINE_MAX_BYTES] * 2
    assert len(out.pending) == 5
