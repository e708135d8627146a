"""A component of the size real interpreter plugins reach (~40 MB): 24 MiB of
data built when the module is imported, as a large library or a model would
be. componentize-py snapshots the interpreter after the import, so the data
ships in the component's memory image. The tests and the benchmark use it
to check that uploads, compilation, the cache and the sandbox pool fit such
components.

Input: ``{}``. Result: ``{"ballast_bytes": n, "crc32": c}``, the checksum
of the data, so every attempt reads all of it.
"""

import random
import zlib

import corral

BALLAST_BYTES = 20 << 20
CHUNK = 64 << 10


def _ballast() -> bytearray:
    # Filled in place, chunk by chunk: a snapshot keeps every byte the heap
    # ever held, so building it whole (and copying it) would ship it twice.
    rng = random.Random(6)
    data = bytearray(BALLAST_BYTES)
    for start in range(0, BALLAST_BYTES, CHUNK):
        data[start : start + CHUNK] = rng.randbytes(CHUNK)
    return data


BALLAST = _ballast()


@corral.handler
def ballast(input: dict) -> dict:
    return {"ballast_bytes": len(BALLAST), "crc32": zlib.crc32(BALLAST)}
