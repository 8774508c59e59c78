"""Lead CSV parsing: header checks, separators, BOM, quoted newlines, line numbers, bad rows,
and a 100,000-row file read in constant memory."""

from __future__ import annotations

import csv
import hashlib
import io
import tracemalloc

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from crm_leads.csv_rows import (
    COLUMNS,
    MAX_RECORD_BYTES,
    ROW,
    Row,
    RowError,
    content_hash,
    open_lead_csv,
    read_rows,
    row_identity,
)
from crm_runtime.errors import InvalidField


def rows_of(data: bytes | str, **options) -> list[Row | RowError]:
    raw = data.encode() if isinstance(data, str) else data
    return list(read_rows(io.BytesIO(raw), **options))


def refused(data: bytes | str) -> InvalidField:
    raw = data.encode() if isinstance(data, str) else data
    with pytest.raises(InvalidField) as caught:
        open_lead_csv(io.BytesIO(raw))
    assert caught.value.field == "file"
    return caught.value


def test_a_plain_file():
    assert rows_of("name,email\nAda,ada@example.com\nBob,bob@example.com\n") == [
        Row(2, {"name": "Ada", "email": "ada@example.com"}),
        Row(3, {"name": "Bob", "email": "bob@example.com"}),
    ]


def test_header_names_are_trimmed_and_lower_cased_and_values_trimmed():
    lead_csv = open_lead_csv(io.BytesIO(b" Name , EMAIL,Campaign_ID\n  Ada , ada@example.com ,  \n"))
    assert lead_csv.columns == ("name", "email", "campaign_id")
    assert list(lead_csv) == [Row(2, {"name": "Ada", "email": "ada@example.com", "campaign_id": ""})]


def test_every_known_column():
    header = ",".join(COLUMNS)
    values = "Ada,ada@example.com,+44 20 7183 8750,Engines,web,c-1,Director,Tools,250,GB"
    [row] = rows_of(f"{header}\n{values}\n")
    assert row == Row(2, dict(zip(COLUMNS, values.split(","), strict=True)))


def test_byte_order_mark():
    lead_csv = open_lead_csv(io.BytesIO("\ufeffname,email\nAda,ada@example.com\n".encode()))
    assert lead_csv.columns == ("name", "email")
    assert list(lead_csv) == [Row(2, {"name": "Ada", "email": "ada@example.com"})]


def test_semicolons():
    lead_csv = open_lead_csv(io.BytesIO(b"name;email;company\nAda;ada@example.com;Engines, Ltd\n"))
    assert lead_csv.delimiter == ";"
    assert list(lead_csv) == [Row(2, {"name": "Ada", "email": "ada@example.com", "company": "Engines, Ltd"})]


def test_commas_with_a_semicolon_inside_a_value():
    lead_csv = open_lead_csv(io.BytesIO(b'name,email,company\nAda,ada@example.com,"A; B"\n'))
    assert lead_csv.delimiter == ","
    assert [row.fields["company"] for row in lead_csv] == ["A; B"]


def test_quoted_fields_with_newlines_keep_line_numbers_right():
    data = ('name,email,company\n'
            '"Ada\nLovelace",ada@example.com,"Analytical\n\nEngines"\n'  # lines 2-5
            'Bob,bob@example.com,"He said ""hi"""\n'  # line 6
            '"Cy",cy@example.com,"x,\ny"\n'  # lines 7-8
            'Di,di@example.com,plain\n')  # line 9
    rows = rows_of(data)
    assert [row.line for row in rows] == [2, 6, 7, 9]
    assert rows[0].fields == {"name": "Ada\nLovelace", "email": "ada@example.com", "company": "Analytical\n\nEngines"}
    assert rows[1].fields["company"] == 'He said "hi"'
    assert rows[2].fields["company"] == "x,\ny"


def test_blank_lines_are_skipped_and_counted():
    data = "\n\n  \nname,email\n\nAda,ada@example.com\n   \n\r\n,\nBob,bob@example.com\n\n"
    assert [(row.line, row.fields["name"]) for row in rows_of(data)] == [(6, "Ada"), (10, "Bob")]


def test_crlf_line_ends():
    data = b'name;email;company\r\nAda;ada@example.com;"two\r\nlines"\r\n\r\nBob;bob@example.com;x\r\n'
    rows = rows_of(data)
    assert [row.line for row in rows] == [2, 5]
    assert rows[0].fields["company"] == "two\r\nlines"
    assert rows[1].fields == {"name": "Bob", "email": "bob@example.com", "company": "x"}


def test_no_newline_at_the_end_and_a_header_only_file():
    assert rows_of("name,email\nAda,ada@example.com") == [Row(2, {"name": "Ada", "email": "ada@example.com"})]
    assert rows_of("name,email") == []
    assert rows_of("name,email\n\n") == []


def test_a_quote_inside_an_unquoted_field_is_a_character():
    rows = rows_of('name,email\nAda "the first,ada@example.com\nBob,bob@example.com\n')
    assert [(row.line, row.fields["name"]) for row in rows] == [(2, 'Ada "the first'), (3, "Bob")]


# --- header refusals ------------------------------------------------------------------------

@pytest.mark.parametrize("data,words", [
    (b"", "is empty"),
    (b"\xef\xbb\xbf", "is empty"),
    (b"\n\n \r\n", "is empty"),
    (b"name\nAda\n", "lacks the column email"),
    (b"email,phone\nada@example.com,1\n", "lacks the column name"),
    (b"company\nEngines\n", "lacks the columns name and email"),
    (b"name,email,fax\n", "unknown column 'fax'"),
    (b"name,email,Email\n", "'email' appears twice"),
    (b"name,email,\n", "column 3 of the header (line 1) has no name"),
    (b"name\temail\nAda\tada@example.com\n", "separated by tabs"),
    (b"name,email\rAda,ada@example.com\r", "lone carriage return"),
    (b'"name,email\nAda,ada@example.com\n', "never closed"),
    (b"n\xe4me,email\n", "not UTF-8"),
    (b"PK\x03\x04\x14\x00\x06\x00", "ZIP archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", ".xls"),
    (b"%PDF-1.7\n", "PDF"),
    ("name,email\n".encode("utf-16"), "UTF-16"),
    (b"\x00\x01\x02name,email\x00\n", "binary"),
    (b"x" * (MAX_RECORD_BYTES + 10), "longer than"),
    (bytes(range(256)) * 4, "not"),
    (b"<html><body>name, email</body></html>\n", "unknown column"),
])
def test_header_problems_refuse_the_file(data, words):
    assert words in refused(data).message


def test_the_unknown_column_message_lists_the_columns():
    assert refused("name,email,fax\n").message == (
        "unknown column 'fax' in the header; the columns are: name, email, phone, company, channel, "
        "campaign_id, title, industry, company_size, country")


def test_header_problems_raise_before_any_row_is_read():
    data = io.BytesIO(b"name,fax\n" + b"Ada,1\n" * 10_000)
    with pytest.raises(InvalidField):
        read_rows(data)  # not iterated: the header is checked on the call
    assert data.tell() < 100


# --- row errors -----------------------------------------------------------------------------

def test_wrong_column_counts_are_row_errors_and_reading_goes_on():
    data = "name,email,company\nAda,ada@example.com\nBob,bob@example.com,x,y\nCy,cy@example.com,z\n"
    assert rows_of(data) == [
        RowError(2, ROW, "has 2 fields; the header has 3 columns"),
        RowError(3, ROW, "has 4 fields; the header has 3 columns"),
        Row(4, {"name": "Cy", "email": "cy@example.com", "company": "z"}),
    ]


def test_bytes_that_are_not_utf8_are_an_error_of_their_row_naming_the_column():
    data = b"name;email;company\nAda;ada@example.com;M\xfcller GmbH\nBob;bob@example.com;ok\n"
    assert rows_of(data) == [
        RowError(2, "company", "is not valid UTF-8 (byte 0xFC); save the file as UTF-8"),
        Row(3, {"name": "Bob", "email": "bob@example.com", "company": "ok"}),
    ]


def test_valid_multibyte_text_passes():
    [row] = rows_of("name,email\nZoë Ørsted 山田,zoe@example.com\n".encode())
    assert row.fields["name"] == "Zoë Ørsted 山田"


def test_a_huge_field_is_a_row_error_not_a_crash():
    huge = b"x" * (csv.field_size_limit() * 2)
    data = b"name,email\n" + b"Ada," + huge + b"\nBob,bob@example.com\n"
    assert rows_of(data) == [
        RowError(2, ROW, f"is longer than {MAX_RECORD_BYTES} bytes"),
        Row(3, {"name": "Bob", "email": "bob@example.com"}),
    ]


def test_a_huge_quoted_field_spanning_lines_is_one_row_error():
    data = b'name,email\n"Ada' + b"\nline" * 20_000 + b'",ada@example.com\nBob,bob@example.com\n'
    rows = rows_of(data)
    assert rows == [
        RowError(2, ROW, f"is longer than {MAX_RECORD_BYTES} bytes (it runs to line 20002: is a quote left open?)"),
        Row(20003, {"name": "Bob", "email": "bob@example.com"}),
    ]


def test_the_record_limit_can_be_lowered():
    assert rows_of("name,email\nAda,ada@example.com\n", max_record_bytes=12) == [
        RowError(2, ROW, "is longer than 12 bytes")]
    with pytest.raises(ValueError):
        open_lead_csv(io.BytesIO(b"name,email\n"), max_record_bytes=csv.field_size_limit())


def test_a_quote_left_open_until_the_end_is_reported_on_its_line():
    data = 'name,email\nAda,ada@example.com\n"Bob,bob@example.com\nCy,cy@example.com\n'
    assert rows_of(data) == [
        Row(2, {"name": "Ada", "email": "ada@example.com"}),
        RowError(3, ROW, "a quoted field that starts on this line is never closed"),
    ]


def test_a_lone_carriage_return_in_a_row_is_a_row_error():
    rows = rows_of(b"name,email\nAda,a\rda@example.com\nBob,bob@example.com\n")
    assert rows == [RowError(2, ROW, "holds a carriage return outside quotes"),
                    Row(3, {"name": "Bob", "email": "bob@example.com"})]


def test_row_error_from_a_domain_refusal():
    error = RowError.from_invalid(7, InvalidField("email", "is required"))
    assert error == RowError(7, "email", "is required")
    assert error.to_dict() == {"line": 7, "field": "email", "reason": "is required"}


# --- hashing and identity -------------------------------------------------------------------

def test_content_hash_streams_and_rewinds():
    data = b"name,email\n" + b"Ada,ada@example.com\n" * 10_000
    file = io.BytesIO(data)
    file.seek(0)
    assert content_hash(file, chunk_size=4096) == hashlib.sha256(data).hexdigest()
    assert file.tell() == 0
    assert len(list(read_rows(file))) == 10_000


def test_the_reader_hashes_what_it_reads_in_one_pass():
    data = "\ufeffname;email\nAda;ada@example.com\n\n".encode()
    lead_csv = open_lead_csv(io.BytesIO(data))
    assert lead_csv.content_hash is None
    list(lead_csv)
    assert lead_csv.content_hash == hashlib.sha256(data).hexdigest()
    assert lead_csv.bytes_read == len(data)


def test_a_reader_is_read_once():
    lead_csv = open_lead_csv(io.BytesIO(b"name,email\n"))
    list(lead_csv)
    with pytest.raises(RuntimeError):
        iter(lead_csv)


def test_row_identity_is_hash_and_line():
    assert row_identity("ab12", 7) == "ab12:7"
    assert row_identity("ab12", 7) != row_identity("ab12", 8)


# --- 100,000 rows in constant memory --------------------------------------------------------

def test_100000_rows_stream_in_constant_memory(tmp_path):
    path = tmp_path / "leads.csv"
    with path.open("wb") as out:
        out.write("\ufeffname;email;company;channel\r\n".encode())
        for index in range(100_000):
            company = f'"Company {index}\r\nfloor 2"' if index % 1000 == 0 else f"Company {index}"
            bad = ";extra" if index % 20_000 == 7 else ""
            out.write(f"Lead {index};lead{index}@example.com;{company};web{bad}\r\n".encode())
    size = path.stat().st_size
    tracemalloc.start()
    try:
        rows = errors = 0
        last_line = 0
        with path.open("rb") as file:
            lead_csv = open_lead_csv(file)
            for item in lead_csv:
                if isinstance(item, Row):
                    rows += 1
                else:
                    errors += 1
                assert item.line > last_line
                last_line = item.line
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (rows, errors) == (99_995, 5)
    assert last_line == 100_000 + 100 + 1  # header, one extra line per quoted break
    assert lead_csv.bytes_read == size
    assert peak < 512 * 1024, f"peak {peak} bytes while reading a {size}-byte file"
    assert size > 4_000_000


def test_a_quoted_header():
    lead_csv = open_lead_csv(io.BytesIO(b'\n"Name";"E-mail";"phone"\n'.replace(b"E-mail", b"Email")))
    assert (lead_csv.columns, lead_csv.delimiter) == (("name", "email", "phone"), ";")


# --- property: what csv.writer writes, read_rows reads back, on the right lines -------------

cell = st.text(alphabet=st.sampled_from(list('ab ,;"\n\r\tÿ山😀')), max_size=12)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.tuples(cell, cell, cell), max_size=20), delimiter=st.sampled_from([",", ";"]),
       terminator=st.sampled_from(["\n", "\r\n"]), chunk=st.sampled_from([1, 2, 7, 64 * 1024]),
       quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
def test_what_csv_writer_writes_is_read_back_on_its_lines(rows, delimiter, terminator, chunk, quoting):
    # Python 3.11's writer leaves a lone CR unquoted when the line terminator is a bare LF:
    # that file is ambiguous (csv.reader refuses it too), so it is not a case to read back.
    assume(quoting == csv.QUOTE_ALL or terminator == "\r\n" or not any("\r" in "".join(row) for row in rows))
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=terminator, quoting=quoting)
    writer.writerow(["name", "email", "company"])
    expected = []
    line = 2
    for name, email, company in rows:
        before = out.tell()
        writer.writerow([f"n{name}", email, company])
        expected.append(Row(line, {"name": f"n{name}".strip(), "email": email.strip(), "company": company.strip()}))
        line += out.getvalue()[before:].count("\n")
    # Small chunks cut the lines anywhere: inside quotes, between "" and inside UTF-8 characters.
    assert rows_of(out.getvalue().encode(), read_chunk=chunk) == expected
