"""Streaming CSV rows for lead imports. Pure: reads a binary file object it is given, no other I/O.

    lead_csv = open_lead_csv(upload)        # reads the header now; InvalidField("file", ...) if bad
    for item in lead_csv:                   # a Row or a RowError per record, in file order
        ...
    lead_csv.content_hash                   # sha256 of every byte, once the rows are exhausted

The file is UTF-8, with or without a byte order mark, comma- or semicolon-separated (told by
the header line), with `"` quoting and `""` for a quote inside a quoted field (RFC 4180, as
Excel and the csv module write it). Lines end in LF or CRLF.

Header: the first non-blank line names the columns, case-insensitively and ignoring blanks
around them: at least `name` and `email`, optionally any of OPTIONAL_COLUMNS, each once. A file
that is empty, not UTF-8 text, binary, or has a bad header raises InvalidField("file", reason)
before any row is yielded.

Rows: each later record is one `Row(line, fields)` or one `RowError(line, field, reason)`.
`line` is the 1-based physical line of the file where the record starts (a quoted field may
hold line breaks, so a record can span lines; blank lines count too). `fields` maps every
header column to its value, trimmed, "" when empty. Blank lines and records whose fields are
all empty (";;;" as spreadsheets export) are skipped. A record is a RowError, and the next
record is read as usual, when it has more or fewer fields than the header has columns, holds
bytes that are not UTF-8 (the error names the column), exceeds `max_record_bytes`, or leaves a
quote open until the end of the file. Checking the values (email, phone, channel, ...) is the
domain's business; `RowError.from_invalid` turns its InvalidField into a row error.

Memory: the reader holds one record (at most `max_record_bytes`) and one read chunk at a
time, whatever the file's size; a longer record is scanned to its end and dropped. Records are
split here, at the byte level, and only then parsed by the csv module, so csv's global
`field_size_limit` (131072 characters by default) is never reached nor changed:
`max_record_bytes` must stay below it.

A row's identity for an idempotent re-import is `(content hash of the file, line)`. The hash
is needed before the first row is stored, so hash the file first (`content_hash(file)`, which
rewinds a seekable file) and then read the rows; `LeadCsv.content_hash` gives the same
digest after one pass, for a caller that cannot seek, to check or record.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from crm_runtime.errors import InvalidField

REQUIRED_COLUMNS = ("name", "email")
OPTIONAL_COLUMNS = ("phone", "company", "channel", "campaign_id", "title", "industry", "company_size", "country")
COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
MAX_RECORD_BYTES = 64 * 1024
READ_CHUNK = 64 * 1024
ROW = "row"  # the `field` of a RowError about the whole record

_BOM = b"\xef\xbb\xbf"
_QUOTE = ord('"')
_LF = ord("\n")
# Splitter states: at the start of a field, inside an unquoted field, inside a quoted field,
# just after a quote inside a quoted field (the end of the quoting, or the first of "").
_START, _FIELD, _QUOTED, _QUOTE_SEEN = range(4)


@dataclass(frozen=True)
class Row:
    line: int
    fields: dict[str, str]


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    reason: str

    @classmethod
    def from_invalid(cls, line: int, error: InvalidField) -> RowError:
        """A domain refusal of a row's value, as the import reports it."""
        return cls(line=line, field=error.field, reason=error.message)

    def to_dict(self) -> dict[str, object]:
        return {"line": self.line, "field": self.field, "reason": self.reason}


def row_identity(content_hash: str, line: int) -> str:
    """The stable name of a row of a file: the same file imported again gives the same names."""
    return f"{content_hash}:{line}"


def content_hash(file: BinaryIO, chunk_size: int = READ_CHUNK) -> str:
    """The sha256 (hex) of the file's bytes from its current position to its end, read in
    chunks; a seekable file is put back where it was, ready to be read again."""
    start = file.tell() if file.seekable() else None
    digest = hashlib.sha256()
    while chunk := file.read(chunk_size):
        digest.update(chunk)
    if start is not None:
        file.seek(start)
    return digest.hexdigest()


@dataclass
class _Record:
    line: int  # where it starts
    last_line: int  # where it ends
    data: bytes | None  # None when it exceeded the limit
    closed: bool  # False when a quoted field was still open at the end of the file


class LeadCsv:
    """The rows of a lead CSV, read once, lazily; made by `open_lead_csv`, which has read and
    checked the header: `columns` (normalised names, in file order) and `delimiter` are set."""

    def __init__(self, file: BinaryIO, max_record_bytes: int = MAX_RECORD_BYTES, read_chunk: int = READ_CHUNK):
        self.file = file
        self.max_record_bytes = max_record_bytes
        self.read_chunk = read_chunk
        self.columns: tuple[str, ...] = ()
        self.delimiter = ","
        self.bytes_read = 0  # for a progress bar
        self._digest = hashlib.sha256()
        self._line = 1  # the physical line the next piece of the file starts on
        self._at_end = False
        self._pending = b""  # bytes read ahead while looking at the start of the file
        self._records: Iterator[_Record] | None = None
        self._started = False

    @property
    def content_hash(self) -> str | None:
        """The file's sha256 (hex) once every byte has been read, else None."""
        return self._digest.hexdigest() if self._at_end else None

    def __iter__(self) -> Iterator[Row | RowError]:
        if self._started:
            raise RuntimeError("a LeadCsv is read once")
        self._started = True
        return self._rows()

    # --- reading ------------------------------------------------------------------------

    def _read_piece(self) -> bytes:
        """The next line of the file, or the next `read_chunk` bytes of a longer one."""
        if self._pending:
            cut = self._pending.find(b"\n") + 1 or len(self._pending)
            piece, self._pending = self._pending[:cut], self._pending[cut:]
            return piece
        piece = self.file.readline(self.read_chunk)
        if piece:
            self._digest.update(piece)
            self.bytes_read += len(piece)
        else:
            self._at_end = True
        return piece

    def _split(self, delimiters: bytes) -> Iterator[_Record]:
        """The file's records, split where a line break is outside quotes."""
        fields_end = re.compile(b"[" + re.escape(delimiters) + b"\n]")
        while True:
            start = last = self._line
            parts: list[bytes] = []
            size = 0
            state = _START
            while piece := self._read_piece():
                last = self._line
                size += len(piece)
                if size <= self.max_record_bytes:
                    parts.append(piece)
                elif parts:
                    parts = []  # over the limit: scan on to the record's end, keep nothing
                state = _scan(piece, state, delimiters, fields_end)
                if piece[-1] == _LF:
                    self._line += 1
                    if state != _QUOTED:
                        break
            if size == 0:
                return
            yield _Record(line=start, last_line=last,
                          data=b"".join(parts) if size <= self.max_record_bytes else None,
                          closed=state != _QUOTED)

    def _rows(self) -> Iterator[Row | RowError]:
        assert self._records is not None
        width = len(self.columns)
        for record in self._records:
            if record.data is None:
                span = "" if record.last_line == record.line else \
                    f" (it runs to line {record.last_line}: is a quote left open?)"
                yield RowError(record.line, ROW, f"is longer than {self.max_record_bytes} bytes{span}")
                continue
            if not record.closed:
                yield RowError(record.line, ROW, "a quoted field that starts on this line is never closed")
                continue
            text = record.data.decode("utf-8", "surrogateescape")
            if not text.strip():
                continue
            try:
                values = next(csv.reader((text,), delimiter=self.delimiter, strict=False))
            except (csv.Error, StopIteration) as exc:
                reason = "holds a carriage return outside quotes" if "new-line" in str(exc) else \
                    f"is not a CSV record: {exc}"
                yield RowError(record.line, ROW, reason)
                continue
            if all(not value.strip() for value in values):
                continue
            if len(values) != width:
                yield RowError(record.line, ROW, f"has {len(values)} field{'s' if len(values) != 1 else ''}; "
                                                 f"the header has {width} columns")
                continue
            bad = _first_undecodable(values)
            if bad is not None:
                index, byte = bad
                yield RowError(record.line, self.columns[index],
                               f"is not valid UTF-8 (byte 0x{byte:02X}); save the file as UTF-8")
                continue
            yield Row(line=record.line, fields={name: value.strip() for name, value in zip(self.columns, values,
                                                                                             strict=True)})

    def _read_header(self) -> None:
        start = self.file.read(4)
        if start:
            self._digest.update(start)
            self.bytes_read += len(start)
        _refuse_foreign_format(start)
        self._pending = start.removeprefix(_BOM)
        # Split the header with both separators: only where a quote may open matters here.
        header_records = self._split(b",;")
        header = None
        for record in header_records:
            if record.data is None:
                raise InvalidField("file", f"the header line is longer than {self.max_record_bytes} bytes; "
                                           "is this a CSV file?")
            if record.data.strip():
                header = record
                break
        if header is None:
            raise InvalidField("file", "is empty; the first line must be a header naming at least name and email")
        assert header.data is not None
        if b"\x00" in header.data:
            raise InvalidField("file", "is binary, not CSV text; export the sheet as CSV UTF-8")
        try:
            text = header.data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidField("file", "the header line is not UTF-8 text; save the file as CSV UTF-8") from None
        if not header.closed:
            raise InvalidField("file", f"the header on line {header.line} opens a quote that is never closed")
        self.delimiter, names = _parse_header(text)
        self.columns = _check_columns(names, header.line)
        self._records = self._split(self.delimiter.encode())


def open_lead_csv(file: BinaryIO, *, max_record_bytes: int = MAX_RECORD_BYTES,
                  read_chunk: int = READ_CHUNK) -> LeadCsv:
    """Reads the header of a lead CSV (InvalidField("file", reason) when it is not one) and
    returns the reader of its rows, positioned after the header. The file is read a line at
    a time, in pieces of at most `read_chunk` bytes."""
    if not 0 < max_record_bytes < csv.field_size_limit():
        raise ValueError(f"max_record_bytes must be between 1 and csv.field_size_limit() - 1, "
                         f"not {max_record_bytes}")
    if read_chunk < 1:
        raise ValueError(f"read_chunk must be positive, not {read_chunk}")
    lead_csv = LeadCsv(file=file, max_record_bytes=max_record_bytes, read_chunk=read_chunk)
    lead_csv._read_header()
    return lead_csv


def read_rows(file: BinaryIO, *, max_record_bytes: int = MAX_RECORD_BYTES,
              read_chunk: int = READ_CHUNK) -> Iterator[Row | RowError]:
    """`iter(open_lead_csv(file))`: the header is checked now, the rows come lazily."""
    return iter(open_lead_csv(file, max_record_bytes=max_record_bytes, read_chunk=read_chunk))


def _scan(piece: bytes, state: int, delimiters: bytes, fields_end: re.Pattern[bytes]) -> int:
    """The splitter's state after `piece`: csv's quoting rules (a quote opens a quoted field
    only at the start of a field), tracked on bytes. UTF-8 never uses ASCII bytes inside a
    multi-byte character, so a byte that looks like a quote or a separator is one."""
    if state != _QUOTED and state != _QUOTE_SEEN and _QUOTE not in piece:
        last = piece[-1]
        return _START if last == _LF or last in delimiters else _FIELD
    index, length = 0, len(piece)
    while index < length:
        if state == _QUOTED:
            found = piece.find(b'"', index)
            if found < 0:
                return _QUOTED
            state, index = _QUOTE_SEEN, found + 1
            continue
        byte = piece[index]
        if state == _FIELD:
            match = fields_end.search(piece, index)
            if match is None:
                return _FIELD
            state, index = _START, match.end()
            continue
        if state == _QUOTE_SEEN and byte == _QUOTE:
            state = _QUOTED  # "" inside a quoted field
        elif state == _START and byte == _QUOTE:
            state = _QUOTED
        elif byte == _LF or byte in delimiters:
            state = _START
        else:
            state = _FIELD
        index += 1
    return state


def _first_undecodable(values: list[str]) -> tuple[int, int] | None:
    """(column index, byte) of the first byte that was not UTF-8 (decoded as a lone surrogate)."""
    for index, value in enumerate(values):
        if value.isascii():
            continue
        for char in value:
            if "\udc80" <= char <= "\udcff":
                return index, ord(char) - 0xDC00
    return None


def _refuse_foreign_format(start: bytes) -> None:
    if start.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InvalidField("file", "is UTF-16 text; save it as CSV UTF-8")
    if start.startswith(b"PK\x03\x04"):
        raise InvalidField("file", "is a ZIP archive (an .xlsx workbook?), not CSV; export the sheet as CSV UTF-8")
    if start.startswith(b"\xd0\xcf\x11\xe0"):
        raise InvalidField("file", "is an old Office document (.xls?), not CSV; export the sheet as CSV UTF-8")
    if start.startswith(b"%PDF"):
        raise InvalidField("file", "is a PDF document, not CSV")


def _parse_header(text: str) -> tuple[str, list[str]]:
    """The delimiter (the one of `;` and `,` that splits the header into more columns; a comma
    when neither splits it) and the column names."""
    line = text.rstrip("\r\n")
    if "\r" in line:
        raise InvalidField("file", "lines end in a lone carriage return (old Mac format); "
                                   "save the file with LF or CRLF line ends")
    best: tuple[str, list[str]] | None = None
    for delimiter in (",", ";"):
        try:
            names = next(csv.reader((line,), delimiter=delimiter, strict=False))
        except (csv.Error, StopIteration):
            continue
        if best is None or len(names) > len(best[1]):
            best = (delimiter, names)
    if best is None:
        raise InvalidField("file", "the header line is not CSV")
    if len(best[1]) == 1 and "\t" in line:
        raise InvalidField("file", "the columns are separated by tabs; use commas or semicolons")
    return best


def _check_columns(names: list[str], line: int) -> tuple[str, ...]:
    columns: list[str] = []
    for position, raw in enumerate(names, start=1):
        name = raw.strip().lower()
        if not name:
            raise InvalidField("file", f"column {position} of the header (line {line}) has no name")
        if name not in COLUMNS:
            shown = raw.strip() if len(raw.strip()) <= 60 else raw.strip()[:60] + "..."
            raise InvalidField("file", f"unknown column {shown!r} in the header; the columns are: "
                                       f"{', '.join(COLUMNS)}")
        if name in columns:
            raise InvalidField("file", f"the column {name!r} appears twice in the header")
        columns.append(name)
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise InvalidField("file", f"the header lacks the column{'s' if len(missing) > 1 else ''} "
                                   f"{' and '.join(missing)}; it must name at least name and email")
    return tuple(columns)
