"""Statistics of a CSV table, with the standard library's ``csv`` and
``statistics``: real work for a Python plugin.

Input: ``{"csv": "<text with a header row>", "delimiter": ","}`` (the
delimiter is optional). Result::

    {"rows": 3,
     "columns": [
       {"name": "price", "type": "number", "count": 3, "missing": 0,
        "min": 1.5, "max": 4.0, "mean": 2.5, "median": 2.0, "stdev": 1.32},
       {"name": "city", "type": "text", "count": 3, "missing": 0,
        "distinct": 2, "top": [{"value": "Paris", "count": 2}, ...]}]}

A column is ``number`` when every non-empty cell is a decimal number
(``-1``, ``2.5``, ``1e3``); an empty cell counts as missing. ``top`` holds the
five most frequent values, ties in text order. ``stdev`` is the sample
standard deviation (null under two values). A row with the wrong number of
fields is a fatal error naming its line: retrying cannot fix the data.
"""

import csv
import io
import re
import statistics
from collections import Counter

import corral

# The same grammar as the JavaScript plugin, so both agree on what a number is
# (Python's float() would also take "nan", "inf" and "1_000").
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
TOP = 5


@corral.handler
def csv_stats(input: dict) -> dict:
    text = input.get("csv") if isinstance(input, dict) else None
    if not isinstance(text, str):
        raise corral.Fatal('the input needs "csv": the table as text')
    delimiter = input.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise corral.Fatal('"delimiter" must be one character')

    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        if not header:
            raise corral.Fatal("the CSV has no header row")
        if len(set(header)) != len(header):
            raise corral.Fatal(f"the header repeats a column name: {header}")
        cells = [[] for _ in header]
        rows = 0
        for row in reader:
            if not row:
                continue  # a blank line
            if len(row) != len(header):
                raise corral.Fatal(
                    f"line {reader.line_num}: {len(row)} fields, the header has {len(header)}"
                )
            for column, cell in zip(cells, row):
                column.append(cell.strip())
            rows += 1
    except csv.Error as e:
        raise corral.Fatal(f"line {reader.line_num}: {e}") from None
    corral.progress(50, f"read {rows} rows")

    columns = [describe(name, values) for name, values in zip(header, cells)]
    corral.log.info(f"{rows} rows, {len(columns)} columns")
    corral.progress(100, "done")
    return {"rows": rows, "columns": columns}


def describe(name: str, values: list) -> dict:
    present = [v for v in values if v != ""]
    summary = {"name": name, "count": len(present), "missing": len(values) - len(present)}
    if present and all(NUMBER.fullmatch(v) for v in present):
        numbers = [float(v) for v in present]
        summary.update(
            type="number",
            min=min(numbers),
            max=max(numbers),
            mean=statistics.fmean(numbers),
            median=statistics.median(numbers),
            stdev=statistics.stdev(numbers) if len(numbers) > 1 else None,
        )
    else:
        counts = Counter(present)
        top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP]
        summary.update(
            type="text",
            distinct=len(counts),
            top=[{"value": value, "count": count} for value, count in top],
        )
    return summary
