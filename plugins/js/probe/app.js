// Exercises every outcome the helper produces; the tests and the benchmark
// drive it. Each input key asks for one behaviour, checked in this order:
// - `log`: writes the text to the job's log (log.info) and to stdout (console.log);
// - `succeed_on_attempt`: throws Retryable on earlier attempts;
// - `fatal`: throws Fatal with the text;
// - `raise`: throws a TypeError the helper does not know (retryable);
// - `allocate_mb`: keeps allocating 1 MiB buffers until that many are held;
// then returns `{"attempt": <n>, "input": <input>, "context": <context>}`.
import { handler as register, Fatal, Retryable, log } from '../corral.js';

export const handler = register((input, job) => {
  if ('log' in input) {
    log.info(input.log);
    console.log(`stdout: ${input.log}`);
  }
  const succeedOn = input.succeed_on_attempt ?? 1;
  if (job.attempt < succeedOn) {
    throw new Retryable(`attempt ${job.attempt} fails; attempt ${succeedOn} will succeed`);
  }
  if ('fatal' in input) throw new Fatal(input.fatal);
  if ('raise' in input) throw new TypeError(input.raise);
  const hoard = [];
  for (let i = 0; i < (input.allocate_mb ?? 0); i++) {
    const block = new Uint8Array(1 << 20);
    block.fill(i & 0xff); // touch it, so no engine can skip the allocation
    hoard.push(block);
  }
  return { attempt: job.attempt, held_mb: hoard.length, input, context: job.context };
});
