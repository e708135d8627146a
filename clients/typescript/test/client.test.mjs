// The client against a real `corral serve`: the Rust test harness
// (tests/tests/it/clients.rs) starts it and passes CORRAL_URL,
// CORRAL_ADMIN_TOKEN and CORRAL_ECHO_WASM.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { before, test } from "node:test";

import { Corral, CorralError } from "../dist/index.js";

const url = process.env.CORRAL_URL;
const admin = process.env.CORRAL_ADMIN_TOKEN;
const echoWasm = process.env.CORRAL_ECHO_WASM;
if (!url || !admin || !echoWasm) {
  throw new Error("set CORRAL_URL, CORRAL_ADMIN_TOKEN and CORRAL_ECHO_WASM (tests/tests/it/clients.rs does)");
}

/** @type {Corral} */
let corral;

before(async () => {
  // A tenant of its own, made with the admin key over plain HTTP.
  const tenant = `ts-${process.pid}`;
  const post = (path, body) =>
    fetch(`${url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  assert.equal((await post("/v1/tenants", { id: tenant })).status, 201);
  const key = await (await post(`/v1/tenants/${tenant}/keys`)).json();
  corral = new Corral({ baseUrl: url, token: key.key });
  const plugin = await corral.uploadPlugin("echo", await readFile(echoWasm), { fuel: 100_000_000 });
  assert.equal(plugin.name, "echo");
});

test("a job is enqueued and waited for", async () => {
  const job = await corral.enqueue("echo", { hello: "world" }, { priority: 5 });
  assert.equal(job.plugin, "echo");
  assert.equal(job.priority, 5);
  const done = await corral.wait(job.id, { timeoutMs: 120_000 });
  assert.equal(done.state, "completed");
  assert.deepEqual(done.result, { hello: "world" });
});

test("watch yields the job's states until it ends", async () => {
  const job = await corral.enqueue("echo", [1, 2, 3]);
  const states = [];
  for await (const event of corral.watch(job.id)) {
    if (event.type === "state") states.push(event.job.state);
  }
  assert.equal(states.at(-1), "completed");
});

test("an idempotency key answers the first job, and refuses another body", async () => {
  const first = await corral.enqueue("echo", { n: 1 }, { idempotencyKey: "ts-order-1" });
  const again = await corral.enqueue("echo", { n: 1 }, { idempotencyKey: "ts-order-1" });
  assert.equal(again.id, first.id);
  await assert.rejects(corral.enqueue("echo", { n: 2 }, { idempotencyKey: "ts-order-1" }), (e) => {
    assert.ok(e instanceof CorralError);
    assert.equal(e.status, 422);
    assert.equal(e.code, "idempotency_key_reused");
    return true;
  });
});

test("a batch is enqueued all at once, and retried under its key", async () => {
  const jobs = [0, 1, 2].map((n) => ({ plugin: "echo", input: n }));
  const ids = await corral.enqueueBatch(jobs, { idempotencyKey: "ts-batch-1" });
  assert.equal(ids.length, 3);
  assert.deepEqual(await corral.enqueueBatch(jobs, { idempotencyKey: "ts-batch-1" }), ids);
  const last = await corral.wait(ids[2], { timeoutMs: 120_000 });
  assert.deepEqual(last.result, 2);
});

test("refusals are CorralErrors with the API's code", async () => {
  await assert.rejects(corral.enqueue("no-such-plugin", {}), (e) => {
    assert.ok(e instanceof CorralError);
    assert.equal(e.status, 422);
    assert.equal(e.code, "unknown_plugin");
    assert.match(e.message, /no-such-plugin/);
    return true;
  });
  await assert.rejects(corral.getJob("00000000-0000-0000-0000-000000000000"), { code: "not_found", status: 404 });
  await assert.rejects(corral.uploadPlugin("bad", new TextEncoder().encode("not wasm")), {
    code: "invalid_component",
  });
  const stranger = new Corral({ baseUrl: url, token: "corral_not_a_key" });
  await assert.rejects(stranger.enqueue("echo", {}), { status: 401 });
});

test("the generated client reaches every other route, typed", async () => {
  const { data, error } = await corral.api.GET("/v1/plugins");
  assert.equal(error, undefined);
  assert.ok(data.plugins.some((p) => p.name === "echo"));
});

test("dead jobs are replayed and waiting ones cancelled in bulk", async () => {
  const later = new Date(Date.now() + 3_600_000).toISOString();
  const job = await corral.enqueue("echo", 1, { runAt: later, queue: "ts-bulk" });
  const counted = await corral.cancelJobs({ queue: "ts-bulk" }, { dryRun: true });
  assert.equal(counted.matched, 1);
  const done = await corral.cancelJobs({ queue: "ts-bulk" });
  assert.deepEqual(done.jobs, [job.id]);
  assert.equal((await corral.getJob(job.id)).state, "cancelled");
  const replayed = await corral.replayJobs({ queue: "ts-bulk", state: "cancelled" });
  assert.equal(replayed.replays.length, 1);
  assert.equal((await corral.getJob(replayed.replays[0])).replay_of, job.id);
  assert.deepEqual((await corral.replayJobs({ queue: "ts-bulk", state: "cancelled" })).jobs, []);
});
