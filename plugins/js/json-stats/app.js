// Example: fetch a JSON list over HTTP and reduce it.
//
// Input: {"url": "https://api.example.com/orders", "field": "total"}.
// Result: how many items there are, and the count, sum, min, max and mean of
// `field` over the items where it is a number. The URL must be on the
// plugin's allow-list (docs/http.md); a refusal or a non-2xx answer is
// retryable, a body that is not a JSON list is fatal.

import { handler as register, Fatal, Retryable, log } from '../corral.js';

export const handler = register(async ({ url, field }) => {
  if (typeof url !== 'string' || typeof field !== 'string') {
    throw new Fatal('the input needs "url" and "field" (text)');
  }
  const response = await fetch(url, { headers: { accept: 'application/json' } });
  if (!response.ok) throw new Retryable(`${url} answered ${response.status}`);
  let items;
  try {
    items = JSON.parse(await response.text());
  } catch (e) {
    throw new Fatal(`${url} did not answer JSON: ${e.message}`);
  }
  if (!Array.isArray(items)) throw new Fatal(`${url} did not answer a JSON list`);
  const values = items
    .filter((item) => item !== null && typeof item === 'object')
    .map((item) => item[field])
    .filter((value) => typeof value === 'number' && Number.isFinite(value));
  log.info(`${items.length} items, ${values.length} with a numeric ${field}`);
  // reduce, not Math.min(...values): spreading a long list overflows the stack.
  const sum = values.reduce((a, b) => a + b, 0);
  const some = values.length > 0;
  return {
    items: items.length,
    count: values.length,
    sum,
    min: some ? values.reduce((a, b) => Math.min(a, b)) : null,
    max: some ? values.reduce((a, b) => Math.max(a, b)) : null,
    mean: some ? sum / values.length : null,
  };
});
