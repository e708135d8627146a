// Greets someone: the plugin the JavaScript guide (docs/plugins/javascript.md)
// builds. Input `{"name": "Ada"}`; result `{"greeting": "Hello, Ada!"}`. The
// punctuation is the plugin's `punctuation` setting, `!` when unset.
import { handler as register, Fatal, log, progress, config } from '../corral.js';

export const handler = register((input, job) => {
  const name = input?.name;
  if (typeof name !== 'string' || name === '') {
    // Retrying cannot fix bad input: the job goes to the dead-letter state.
    throw new Fatal('the input needs a non-empty "name"');
  }
  log.info(`greeting ${name} (attempt ${job.attempt})`);
  progress(50, 'halfway');
  return { greeting: `Hello, ${name}${config('punctuation') ?? '!'}` };
});
