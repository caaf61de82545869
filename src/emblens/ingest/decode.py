"""Bytes as the formats read them: UTF-8. A member written as UTF-16 (Windows PowerShell's `>`
writes UTF-16LE) is told from its first bytes and read through a transcoding stream; gzip and zip
members are inflated by the bundle reader (`inflate`)."""

from __future__ import annotations


def utf16(head: bytes) -> str | None:
    """The UTF-16 flavour of a member (Windows PowerShell's `>` writes UTF-16LE), or None."""
    if head.startswith(b"\xff\xfe"):
        return "utf-16-le"
    if head.startswith(b"\xfe\xff"):
        return "utf-16-be"
    sample = head[:4096]
    if len(sample) >= 64:
        for enc, zeros, chars in (("utf-16-le", sample[1::2], sample[0::2]), ("utf-16-be", sample[0::2], sample[1::2])):
            if zeros.count(0) > 0.9 * len(zeros) and chars.count(0) < 0.05 * len(chars):
                return enc
    return None


class Transcoded:
    """A UTF-16 stream read as UTF-8, in pieces (the adapters all read UTF-8)."""

    def __init__(self, raw, encoding: str) -> None:
        import codecs

        self._raw, self._bom = raw, True
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self.fragile = getattr(raw, "fragile", False)

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n if n is None or n < 0 else max(2, n))
        text = self._decoder.decode(data, final=not data)
        if self._bom:
            text, self._bom = text.removeprefix("\ufeff"), False
        return text.encode("utf-8")

    def close(self) -> None:
        self._raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
