"""A member's bytes as chunks of whole lines, read without copying the blocks they came in, and
the errors reading may raise: what a stream breaking looks like, and how it is told."""

from __future__ import annotations

import gzip
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import polars as pl

from emblens.ingest import inflate
from emblens.reading.context import CHUNK_BYTES, MAX_LINE_BYTES

READ_ERRORS = (OSError, EOFError, *inflate.ERRORS, zipfile.BadZipFile, UnicodeError)


@dataclass
class Chunk:
    """Whole lines of a member without copying the block they were read in: `parts` are read as
    one run of lines; a line cut at the block's start is completed by a small `head` part (then
    the block's own first row is dropped), and a line cut at its end is left to the next chunk."""

    parts: list[bytes]
    drop_first: bool = False
    drop_last: bool = False
    cut: int = 0          # lines longer than MAX_LINE_BYTES whose end was dropped while reading

    def contains(self, needle: bytes) -> bool:
        return any(needle in p for p in self.parts)


def _blocks(stream: BinaryIO, size: int, piece: int) -> Iterator[bytes]:
    """Blocks of about `size` bytes. A compressed (`fragile`) stream is read in small pieces so
    that, when it breaks, the bytes before the break are still yielded before the error."""
    if not getattr(stream, "fragile", False):
        while block := stream.read(size):
            yield block
        return
    while True:
        data, error = _gather(stream, size, piece)
        if data:
            yield data
        if error is not None:
            raise error
        if len(data) < size:
            return


def read_chunks(stream: BinaryIO, size: int = CHUNK_BYTES, piece: int = 64 * 1024) -> Iterator[Chunk]:
    """Yield chunks of whole lines. When the stream breaks, the lines before the break (the last
    one possibly cut) are yielded first, then the error is raised."""
    rest = b""
    cut = 0                       # the line being gathered was cut at MAX_LINE_BYTES
    blocks = _blocks(stream, size, piece)
    while True:
        try:
            block = next(blocks, None)
        except READ_ERRORS:
            if rest:
                yield Chunk([rest], cut=cut)
            raise
        if block is None:
            break
        first_nl = block.find(b"\n")
        if first_nl < 0:          # a line longer than a block: keep gathering it, up to the cap
            if not cut:
                rest += block
                if len(rest) > MAX_LINE_BYTES:
                    rest, cut = rest[:MAX_LINE_BYTES], 1
            continue
        last_nl = block.rfind(b"\n")
        if rest:
            head = rest + (b"\n" if cut else block[: first_nl + 1])
            chunk = Chunk([head, block], drop_first=True, cut=cut)
        else:
            chunk = Chunk([block])
        chunk.drop_last = last_nl != len(block) - 1
        rest, cut = block[last_nl + 1 :], 0
        yield chunk
    if rest:
        yield Chunk([rest], cut=cut)


def describe_read_error(e: BaseException) -> str:
    text = (str(e) or type(e).__name__).splitlines()[0][:160]
    if isinstance(e, (EOFError, *inflate.ERRORS, gzip.BadGzipFile)):
        return f"corrupt compressed data: {text}"
    if isinstance(e, RecursionError):
        return "nested deeper than emblens reads (hostile or damaged data)"
    return text


def read_head(stream: BinaryIO, n: int) -> bytes:
    """The first `n` bytes, or as many as could be read before the stream broke."""
    data, error = _gather(stream, n, 16 * 1024)
    if error is not None and not data:
        raise error
    return data


def _gather(stream: BinaryIO, size: int, piece: int) -> tuple[bytes, BaseException | None]:
    """Up to `size` bytes read `piece` at a time, and the read error that stopped it, if any:
    the bytes read before a break are kept."""
    pieces: list[bytes] = []
    got = 0
    while got < size:
        try:
            block = stream.read(min(piece, size - got))
        except READ_ERRORS as e:
            return b"".join(pieces), e
        if not block:
            break
        pieces.append(block)
        got += len(block)
    return (b"".join(pieces) if len(pieces) != 1 else pieces[0]), None


def fresh(data):
    """The strings of a frame or series written anew. A string column taken from a chunk's lines
    (filtered, gathered, grouped) still holds the buffers of the whole chunk: what outlives its
    chunk must be copied, or every chunk read stays in memory."""
    if isinstance(data, pl.Series):
        return data.to_frame().select(pl.concat_str([pl.col(data.name), pl.lit("")])).to_series() \
            if data.dtype == pl.String else data
    strings = [c for c, d in data.schema.items() if d == pl.String]
    return data.with_columns(pl.concat_str([pl.col(c), pl.lit("")]).alias(c) for c in strings) if strings else data
