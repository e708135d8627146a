// Statistics of a CSV table: real work for a JavaScript plugin, with the
// same input and result as plugins/python/csv-stats (see its app.py).
//
// Input: `{"csv": "<text with a header row>", "delimiter": ","}`. Result:
// `{"rows": n, "columns": [{"name", "type": "number", "count", "missing",
// "min", "max", "mean", "median", "stdev"} | {"name", "type": "text",
// "count", "missing", "distinct", "top": [{"value", "count"}]}]}`.
// A row with the wrong number of fields is a fatal error naming its line.
import { handler as register, Fatal, log, progress } from '../corral.js';

// What a number is, the same grammar as the Python plugin.
const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
const TOP = 5;

// RFC 4180 records: quoted fields may hold the delimiter, newlines and `""`.
// Yields `{line, fields}` with the line each record starts on.
function* records(text, delimiter) {
  let fields = [];
  let field = '';
  let line = 1;
  let start = 1;
  let i = 0;
  let quotedField = false;
  while (i < text.length) {
    const c = text[i];
    if (c === '"' && field === '' && !quotedField) {
      quotedField = true;
      i++;
      for (;;) {
        if (i >= text.length) throw new Fatal(`line ${start}: unexpected end of data in a quoted field`);
        const q = text[i];
        if (q === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (q === '\n') line++;
        field += q;
        i++;
      }
      if (i < text.length && text[i] !== delimiter && text[i] !== '\n' && text[i] !== '\r') {
        throw new Fatal(`line ${line}: '${delimiter}' expected after '"'`);
      }
      continue;
    }
    if (c === delimiter) {
      fields.push(field);
      field = '';
      quotedField = false;
      i++;
    } else if (c === '\r' || c === '\n') {
      fields.push(field);
      yield { line: start, fields };
      fields = [];
      field = '';
      quotedField = false;
      i += c === '\r' && text[i + 1] === '\n' ? 2 : 1;
      line++;
      start = line;
    } else {
      field += c;
      i++;
    }
  }
  if (field !== '' || fields.length > 0 || quotedField) {
    fields.push(field);
    yield { line: start, fields };
  }
}

function describe(name, values) {
  const present = values.filter((v) => v !== '');
  const summary = { name, count: present.length, missing: values.length - present.length };
  if (present.length > 0 && present.every((v) => NUMBER.test(v))) {
    const numbers = present.map(Number);
    const sorted = [...numbers].sort((a, b) => a - b);
    const n = sorted.length;
    const mean = numbers.reduce((sum, x) => sum + x, 0) / n;
    const median = n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    const stdev =
      n > 1 ? Math.sqrt(numbers.reduce((sum, x) => sum + (x - mean) ** 2, 0) / (n - 1)) : null;
    return { ...summary, type: 'number', min: sorted[0], max: sorted[n - 1], mean, median, stdev };
  }
  const counts = new Map();
  for (const v of present) counts.set(v, (counts.get(v) ?? 0) + 1);
  const top = [...counts]
    .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0))
    .slice(0, TOP)
    .map(([value, count]) => ({ value, count }));
  return { ...summary, type: 'text', distinct: counts.size, top };
}

export const handler = register((input) => {
  const text = input?.csv;
  if (typeof text !== 'string') throw new Fatal('the input needs "csv": the table as text');
  const delimiter = input.delimiter ?? ',';
  if (typeof delimiter !== 'string' || delimiter.length !== 1) {
    throw new Fatal('"delimiter" must be one character');
  }
  const all = records(text, delimiter);
  const first = all.next();
  if (first.done || (first.value.fields.length === 1 && first.value.fields[0] === '')) {
    throw new Fatal('the CSV has no header row');
  }
  const header = first.value.fields;
  if (new Set(header).size !== header.length) {
    throw new Fatal(`the header repeats a column name: ${JSON.stringify(header)}`);
  }
  const cells = header.map(() => []);
  let rows = 0;
  for (const { line, fields } of all) {
    if (fields.length === 1 && fields[0] === '') continue; // a blank line
    if (fields.length !== header.length) {
      throw new Fatal(`line ${line}: ${fields.length} fields, the header has ${header.length}`);
    }
    fields.forEach((cell, i) => cells[i].push(cell.trim()));
    rows++;
  }
  progress(50, `read ${rows} rows`);
  const columns = header.map((name, i) => describe(name, cells[i]));
  log.info(`${rows} rows, ${columns.length} columns`);
  progress(100, 'done');
  return { rows, columns };
});
