// The Corral client: the API's types and routes are generated from its
// OpenAPI document (src/schema.ts, `npm run generate`); this file adds what a
// generator does badly: one call per task, waiting and watching over
// Server-Sent Events, binary upload, idempotency keys, and errors as one
// typed exception carrying the API's `code`.
import createClient, { type Client } from "openapi-fetch";
import { EventSourceParserStream } from "eventsource-parser/stream";
import type { components, paths } from "./schema.js";

export type { components, paths } from "./schema.js";
export type Job = components["schemas"]["Job"];
export type JobState = components["schemas"]["JobState"];
export type NewJob = components["schemas"]["CreateJob"];
export type Plugin = components["schemas"]["PluginView"];
export type WorkflowRun = components["schemas"]["WorkflowRun"];
export type Progress = components["schemas"]["Progress"];
export type JobSelector = components["schemas"]["JobSelector"];

/** What a bulk replay or cancel did (every request of it), or would do. */
export interface BulkResult {
  /** The jobs replayed or cancelled (none on a dry run). */
  jobs: string[];
  /** Replay: the new jobs, in the order of `jobs`. */
  replays: string[];
  /** Dry run: how many jobs match, and whether that is a lower bound. */
  matched?: number;
  matchedIsLowerBound?: boolean;
}

/** States a job does not leave. */
export const TERMINAL_STATES: readonly JobState[] = ["completed", "dead", "cancelled"];

/** An answer of the API that is not a success: its status, `code` and message. */
export class CorralError extends Error {
  /** The HTTP status (0 when the server could not be reached). */
  readonly status: number;
  /** The API's stable snake_case code (`unknown_plugin`, `queue_full`, …). */
  readonly code: string;
  /** Seconds to wait before retrying, from `Retry-After` (429 and 503). */
  readonly retryAfter: number | undefined;

  constructor(status: number, code: string, message: string, retryAfter?: number) {
    super(`${code}: ${message}`);
    this.name = "CorralError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

export interface CorralOptions {
  /** Where the API is, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** A tenant's API key (or an admin key). */
  token: string;
  /** A fetch to use instead of the global one. */
  fetch?: typeof fetch;
}

export interface EnqueueOptions {
  version?: number;
  queue?: string;
  priority?: number;
  /** Run no earlier than this. */
  runAt?: Date | string;
  maxAttempts?: number;
  timeoutMs?: number;
  /** A retry with the same key and request answers the first job. */
  idempotencyKey?: string;
}

export interface UploadOptions {
  fuel?: number;
  memoryMb?: number;
  timeoutMs?: number;
  maxAttempts?: number;
  /** The outbound HTTP settings (docs/http.md). */
  http?: unknown;
}

/** One event of a job's stream: its whole state, or a progress report. */
export type JobEvent =
  | { type: "state"; job: Job }
  | { type: "progress"; progress: Progress };

export class Corral {
  /** The generated client, for every route this class has no method for. */
  readonly api: Client<paths>;
  private readonly options: CorralOptions;
  private readonly fetch: typeof fetch;

  constructor(options: CorralOptions) {
    this.options = { ...options, baseUrl: options.baseUrl.replace(/\/+$/, "") };
    this.fetch = options.fetch ?? globalThis.fetch;
    this.api = createClient<paths>({
      baseUrl: this.options.baseUrl,
      headers: { authorization: `Bearer ${options.token}` },
      fetch: this.fetch,
    });
  }

  /** Enqueue one job of `plugin` with `input` (any JSON value). */
  async enqueue(plugin: string, input: unknown, options: EnqueueOptions = {}): Promise<Job> {
    const body: NewJob = {
      plugin,
      input,
      version: options.version,
      queue: options.queue,
      priority: options.priority,
      run_at: options.runAt instanceof Date ? options.runAt.toISOString() : options.runAt,
      max_attempts: options.maxAttempts,
      timeout_ms: options.timeoutMs,
    };
    return answer(
      await this.api.POST("/v1/jobs", { body, headers: keyHeader(options.idempotencyKey) }),
    );
  }

  /** Enqueue up to 1000 jobs, all or nothing; their ids, in order. */
  async enqueueBatch(jobs: NewJob[], options: { idempotencyKey?: string } = {}): Promise<string[]> {
    const created = answer(
      await this.api.POST("/v1/jobs/batch", {
        body: { jobs },
        headers: keyHeader(options.idempotencyKey),
      }),
    );
    return created.ids;
  }

  async getJob(id: string): Promise<Job> {
    return answer(await this.api.GET("/v1/jobs/{id}", { params: { path: { id } } }));
  }

  async cancel(id: string): Promise<Job> {
    return answer(await this.api.POST("/v1/jobs/{id}/cancel", { params: { path: { id } } }));
  }

  /**
   * Replay every finished job `filter` selects (dead ones unless it names
   * another finished state), each once, following the API's cursor until
   * none are left (1,000 a request). `dryRun` only counts them.
   */
  async replayJobs(filter: JobSelector = {}, options: { dryRun?: boolean } = {}): Promise<BulkResult> {
    return this.bulk("/v1/jobs/replay", filter, options.dryRun ?? false);
  }

  /** Cancel every unfinished job `filter` selects, as `replayJobs` replays. */
  async cancelJobs(filter: JobSelector = {}, options: { dryRun?: boolean } = {}): Promise<BulkResult> {
    return this.bulk("/v1/jobs/cancel", filter, options.dryRun ?? false);
  }

  private async bulk(
    path: "/v1/jobs/replay" | "/v1/jobs/cancel",
    filter: JobSelector,
    dryRun: boolean,
  ): Promise<BulkResult> {
    const result: BulkResult = { jobs: [], replays: [] };
    let cursor: string | undefined;
    for (;;) {
      const outcome = answer(await this.api.POST(path, { body: { filter, dry_run: dryRun, cursor } }));
      if (dryRun) {
        return { ...result, matched: outcome.matched ?? 0, matchedIsLowerBound: outcome.matched_is_lower_bound ?? false };
      }
      result.jobs.push(...outcome.jobs);
      result.replays.push(...(outcome.replays ?? []));
      // A cursor that does not move would loop forever.
      if (!outcome.next_cursor || outcome.next_cursor === cursor) return result;
      cursor = outcome.next_cursor;
    }
  }

  /** Start a run of a workflow. */
  async startRun(
    workflow: string,
    input: unknown = {},
    options: { version?: number; idempotencyKey?: string } = {},
  ): Promise<WorkflowRun> {
    return answer(
      await this.api.POST("/v1/workflows/{name}/runs", {
        params: { path: { name: workflow } },
        body: { input, version: options.version },
        headers: keyHeader(options.idempotencyKey),
      }),
    );
  }

  /** Upload a component as a new version of plugin `name` (the latest when the bytes are the same). */
  async uploadPlugin(name: string, component: Uint8Array, options: UploadOptions = {}): Promise<Plugin> {
    const query = new URLSearchParams();
    const put = (key: string, value: number | undefined) => {
      if (value !== undefined) query.set(key, String(value));
    };
    put("fuel", options.fuel);
    put("memory_mb", options.memoryMb);
    put("timeout_ms", options.timeoutMs);
    put("max_attempts", options.maxAttempts);
    if (options.http !== undefined) query.set("http", JSON.stringify(options.http));
    const suffix = query.size > 0 ? `?${query}` : "";
    const response = await this.send(`/v1/plugins/${encodeURIComponent(name)}${suffix}`, {
      method: "POST",
      headers: { "content-type": "application/wasm" },
      // A Uint8Array is a valid body; DOM's types only lag behind (ArrayBufferLike).
      body: component as unknown as BodyInit,
    });
    return (await response.json()) as Plugin;
  }

  /**
   * The job's events until it ends: its whole state first and on every
   * change, and each progress report. Follows the job whichever host runs it.
   */
  async *watch(id: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<JobEvent> {
    const response = await this.send(`/v1/jobs/${encodeURIComponent(id)}/events`, {
      headers: { accept: "text/event-stream" },
      signal: options.signal,
    });
    if (!response.body) throw new CorralError(response.status, "no_stream", "the answer has no body");
    const events = response.body
      .pipeThrough(new TextDecoderStream())
      .pipeThrough(new EventSourceParserStream());
    const reader = events.getReader();
    try {
      for (;;) {
        const { done, value: event } = await reader.read();
        if (done) return;
        if (event.event === "state") {
          yield { type: "state", job: JSON.parse(event.data) as Job };
        } else if (event.event === "progress") {
          yield { type: "progress", progress: JSON.parse(event.data) as Progress };
        }
      }
    } finally {
      await reader.cancel().catch(() => {});
    }
  }

  /**
   * The job once it has ended (`completed`, `dead` or `cancelled`), followed
   * over Server-Sent Events; rejects after `timeoutMs` if given.
   */
  async wait(id: string, options: { timeoutMs?: number } = {}): Promise<Job> {
    const controller = new AbortController();
    const timer =
      options.timeoutMs === undefined ? undefined : setTimeout(() => controller.abort(), options.timeoutMs);
    try {
      let last: Job | undefined;
      for await (const event of this.watch(id, { signal: controller.signal })) {
        if (event.type === "state") {
          last = event.job;
          if (TERMINAL_STATES.includes(last.state)) return last;
        }
      }
      // The stream ended early (a restarted host): ask once more.
      last = await this.getJob(id);
      if (TERMINAL_STATES.includes(last.state)) return last;
      return await this.wait(id, options);
    } catch (e) {
      if (controller.signal.aborted) {
        throw new CorralError(0, "timeout", `job ${id} did not end within ${options.timeoutMs} ms`);
      }
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /** A request outside the generated client (binary bodies, streams), errors thrown. */
  private async send(path: string, init: RequestInit): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set("authorization", `Bearer ${this.options.token}`);
    const response = await this.fetch(`${this.options.baseUrl}${path}`, { ...init, headers });
    if (!response.ok) {
      const text = await response.text();
      throw errorOf(response, parseJson(text));
    }
    return response;
  }
}

function keyHeader(key: string | undefined): Record<string, string> {
  return key === undefined ? {} : { "Idempotency-Key": key };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function errorOf(response: Response, body: unknown): CorralError {
  const detail = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const retryAfter = Number(response.headers.get("retry-after") ?? Number.NaN);
  return new CorralError(
    response.status,
    typeof detail?.code === "string" ? detail.code : `http_${response.status}`,
    typeof detail?.message === "string" ? detail.message : response.statusText,
    Number.isFinite(retryAfter) ? retryAfter : undefined,
  );
}

/** The data of a generated call, or its error thrown as a CorralError. */
function answer<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.error !== undefined || result.data === undefined) {
    throw errorOf(result.response, result.error);
  }
  return result.data;
}
