"""Test plugin: makes the HTTP requests its input lists, one after the other,
and returns what each gave (status and body, or the error the host answered
with). The Python twin of plugins/rust/fetch, used by the outbound HTTP tests.

Input: ``{"requests": [{"method": "GET", "url": "...", "headers": {"k": "v"}, "body": "..."}]}``
(``"times": n`` on a request repeats it).
"""

import corral
from corral import http


@corral.handler
def fetch(input: dict) -> list:
    outcomes = []
    for call in input["requests"]:
        for _ in range(call.get("times", 1)):
            try:
                response = http.request(
                    call.get("method", "GET"),
                    call["url"],
                    headers=call.get("headers"),
                    body=call.get("body", ""),
                )
                outcomes.append({"status": response.status, "body": response.text()})
            except http.HttpError as e:
                outcomes.append({"error": str(e)})
    return outcomes
