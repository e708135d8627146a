// Test plugin: makes the HTTP requests its input lists, one after the other,
// with the standard `fetch`, and returns what each gave (status and body, or
// the error it rejected with). The JavaScript twin of plugins/rust/fetch,
// used by the outbound HTTP tests.
//
// Input: {"requests": [{"method": "GET", "url": "...", "headers": {"k": "v"}, "body": "..."}]}
// ("times": n on a request repeats it).

import { handler as register } from '../corral.js';

export const handler = register(async (input) => {
  const outcomes = [];
  for (const call of input.requests) {
    for (let i = 0; i < (call.times ?? 1); i++) {
      const method = call.method ?? 'GET';
      const init = { method, headers: call.headers ?? {} };
      if (method !== 'GET' && method !== 'HEAD') init.body = call.body ?? '';
      try {
        const response = await fetch(call.url, init);
        outcomes.push({ status: response.status, body: await response.text() });
      } catch (e) {
        outcomes.push({ error: String(e && e.message ? e.message : e) });
      }
    }
  }
  return outcomes;
});
