"""Example: fetch a JSON list over HTTP and reduce it.

Input: ``{"url": "https://api.example.com/orders", "field": "total"}``.
Result: how many items there are, and the count, sum, min, max and mean of
``field`` over the items where it is a number. The URL must be on the
plugin's allow-list (docs/http.md); a refusal or a non-2xx answer is
retryable, a body that is not a JSON list is fatal.
"""

import corral
from corral import http


@corral.handler
def json_stats(input: dict) -> dict:
    url, field = input.get("url"), input.get("field")
    if not isinstance(url, str) or not isinstance(field, str):
        raise corral.Fatal('the input needs "url" and "field" (text)')
    response = http.get(url, headers={"accept": "application/json"})
    if not response.ok:
        raise corral.Retryable(f"{url} answered {response.status}")
    try:
        items = response.json()
    except http.HttpError as e:
        raise corral.Fatal(str(e)) from None
    if not isinstance(items, list):
        raise corral.Fatal(f"{url} did not answer a JSON list")
    values = [
        item[field]
        for item in items
        if isinstance(item, dict)
        and isinstance(item.get(field), (int, float))
        and not isinstance(item.get(field), bool)
    ]
    corral.log.info(f"{len(items)} items, {len(values)} with a numeric {field}")
    return {
        "items": len(items),
        "count": len(values),
        "sum": sum(values),
        "min": min(values) if values else None,
        "max": max(values) if values else None,
        "mean": sum(values) / len(values) if values else None,
    }
