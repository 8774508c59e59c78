"""kafka-python checksums every record batch it writes or reads (CRC-32C). Without the
`crc32c` package it falls back to a pure-Python loop that halved the relay's rate; the
pinned requirements install it, and this fails if an install left it out."""

from kafka.record import util
from kafka.record._crc32c import crc as crc32c_in_python


def test_kafka_python_checksums_record_batches_in_c():
    assert util.crc32c_c is not None, "the crc32c package is not installed (requirements.txt pins it)"
    data = memoryview(bytes(range(256)) * 8)
    assert util.calc_crc32c(data) == crc32c_in_python(data)  # the same checksum, from C
