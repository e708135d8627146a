// Types of the Corral plugin helper (corral.js). See corral.js for the
// behaviour and docs/plugins/javascript.md for the guide.

/** Worth trying again: the job is retried with backoff while attempts remain. */
export class Retryable extends Error {
  constructor(message: string);
}

/** Never worth trying again: the job goes to the dead-letter state at once. */
export class Fatal extends Error {
  constructor(message: string);
}

/** Lines in the job's log (bounded by the plugin's `log` limit). */
export const log: {
  trace(message: unknown): void;
  debug(message: unknown): void;
  info(message: unknown): void;
  warn(message: unknown): void;
  error(message: unknown): void;
};

/** Report progress, 0 to 100 (values outside are clamped), with a short message. */
export function progress(percent: number, message?: string): void;

/** Read one of this plugin's settings, set by the operator over the API. */
export function config(key: string): string | undefined;

/** Any value JSON.stringify encodes. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/** The job an attempt belongs to. */
export interface Job {
  /** The job's id (a UUID in text form). */
  readonly id: string;
  /** The tenant that owns the job. */
  readonly tenant: string;
  /** This plugin's name. */
  readonly plugin: string;
  /** Which attempt this is, starting at 1. */
  readonly attempt: number;
  /** How many attempts the job may use in all. */
  readonly maxAttempts: number;
  /** Whether a retryable error now would leave no attempt to retry with. */
  readonly isLastAttempt: boolean;
  /**
   * For a workflow step: `{input, steps}` (and `item`, `index` for a
   * `for_each` element); null for a plain job.
   */
  readonly context: { input: Json; steps: Record<string, Json>; item?: Json; index?: number } | null;
}

/** What `handler()` returns: export it as `handler`. */
export interface Handler {
  run(job: unknown): string | Promise<string>;
}

/**
 * Make the `handler` export from `fn(input, job)`; `In` is what the job's
 * JSON input parses to (not checked at run time), `Out` the result.
 *
 *     import { handler as register } from 'corral-plugin';
 *     export const handler = register((input: { name: string }) => ({ greeting: `Hello, ${input.name}!` }));
 */
export function handler<In = Json, Out = Json>(
  fn: (input: In, job: Job) => Out | Promise<Out>,
): Handler;
