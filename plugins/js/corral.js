// Write Corral plugins in JavaScript.
//
// A plugin is one function from the job's input (parsed JSON, usually an
// object) to its result (anything JSON.stringify accepts), registered with
// `handler()` and exported as `handler`. This module parses the input,
// encodes the result, and turns `Retryable` and `Fatal` into the job's
// outcome; you never see the WIT bindings:
//
//     import { handler as register, Fatal, log, progress, config } from '../corral.js';
//
//     export const handler = register((input, job) => {
//       if (!input.name) throw new Fatal('name is empty'); // retrying cannot fix bad input
//       log.info(`greeting ${input.name} (attempt ${job.attempt})`);
//       progress(50, 'halfway');
//       return { greeting: `Hello, ${input.name}${config('punctuation') ?? '!'}` };
//     });
//
// Errors and retries:
// - `throw new Retryable(msg)`: retried with backoff while attempts remain.
// - `throw new Fatal(msg)`: never retried; the job is dead at once.
// - Anything else thrown is retryable; its stack goes to the job's log.
// - Input that is not JSON, or a result JSON.stringify cannot encode, is fatal.
// - The handler may be `async` and `await fetch(...)`: the standard fetch
//   goes through the host's allow-list (Corral's docs/http.md); a refused
//   request rejects with a TypeError.
//
// A plugin has no files, no environment variables and no network beyond what
// its allow-list grants. console.log goes to the job's log (bounded).
//
// Build with componentize-js against Corral's wit/ folder (`just plugins`
// does this for plugins/js/*):
//
//     componentize-js app.js --wit wit --world-name job-handler -d fetch-event -o app.wasm

import {
  log as hostLog,
  progress as hostProgress,
  config as hostConfig,
} from 'corral:plugin/host@0.1.0';

/** Worth trying again: the job is retried with backoff while attempts remain. */
export class Retryable extends Error {
  constructor(message) {
    super(message);
    this.name = 'Retryable';
  }
}

/** Never worth trying again: the job goes to the dead-letter state at once. */
export class Fatal extends Error {
  constructor(message) {
    super(message);
    this.name = 'Fatal';
  }
}

/** Lines in the job's log (bounded by the plugin's `log` limit). */
export const log = {
  trace: (message) => hostLog('trace', String(message)),
  debug: (message) => hostLog('debug', String(message)),
  info: (message) => hostLog('info', String(message)),
  warn: (message) => hostLog('warn', String(message)),
  error: (message) => hostLog('error', String(message)),
};

/** Report progress, 0 to 100 (values outside are clamped), with a short message. */
export function progress(percent, message = '') {
  const clamped = Math.max(0, Math.min(100, Math.trunc(Number(percent)) || 0));
  hostProgress(clamped, String(message));
}

/** Read one of this plugin's settings, set by the operator over the API; nullish when unset. */
export function config(key) {
  return hostConfig(String(key));
}

// componentize-js ends `run` with `err(payload)` when what it throws carries
// a `payload`: here the WIT `job-error` variant.
function jobError(tag, message) {
  const error = new Error(message);
  error.payload = { tag, val: message };
  return error;
}

function describe(error) {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return `thrown: ${String(error)}`;
}

/**
 * Make the `handler` export from `fn(input, job)`. `job` has `id`, `tenant`,
 * `plugin`, `attempt`, `maxAttempts`, `isLastAttempt` and `context` (for a
 * workflow step: `{input, steps}`, plus `item` and `index` for a `for_each`
 * element; null for a plain job).
 */
export function handler(fn) {
  if (typeof fn !== 'function') throw new TypeError('handler() takes a function');
  return {
    run(job) {
      let input;
      let context = null;
      try {
        input = JSON.parse(job.input);
      } catch (e) {
        throw jobError('fatal', `the job's input is not JSON: ${e.message}`);
      }
      try {
        if (job.context !== undefined && job.context !== null) context = JSON.parse(job.context);
      } catch (e) {
        throw jobError('fatal', `the job's context is not JSON: ${e.message}`);
      }
      const info = Object.freeze({
        id: job.id,
        tenant: job.tenant,
        plugin: job.plugin,
        attempt: job.attempt,
        maxAttempts: job.maxAttempts,
        isLastAttempt: job.attempt >= job.maxAttempts,
        context,
      });
      let result;
      try {
        result = fn(input, info);
      } catch (e) {
        throw outcomeOf(e);
      }
      // An async handler (one that awaits `fetch`): componentize-js runs the
      // event loop until the promise settles.
      if (result instanceof Promise) {
        return result.then(encode, (e) => {
          throw outcomeOf(e);
        });
      }
      return encode(result);
    },
  };
}

// The job's outcome for what a handler threw.
function outcomeOf(e) {
  if (e instanceof Fatal) return jobError('fatal', e.message);
  if (e instanceof Retryable) return jobError('retryable', e.message);
  const stack = e instanceof Error && e.stack ? `\n${e.stack.trimEnd()}` : '';
  hostLog('error', `${describe(e)}${stack}`);
  return jobError('retryable', describe(e));
}

// The handler's result as the job's result text.
function encode(result) {
  let text;
  try {
    text = JSON.stringify(result);
  } catch (e) {
    throw jobError('fatal', `the plugin's result cannot be encoded as JSON: ${e.message}`);
  }
  if (text === undefined) {
    throw jobError('fatal', `the plugin's result cannot be encoded as JSON: ${typeof result}`);
  }
  return text;
}
