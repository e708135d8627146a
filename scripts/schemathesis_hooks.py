"""Schemathesis hooks for Corral: plugin uploads are `application/wasm`,
raw bytes schemathesis does not know how to send by itself."""

import schemathesis


@schemathesis.serializer("application/wasm")
def wasm(ctx, value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return bytes(str(value), "utf-8")
