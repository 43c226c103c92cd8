/** Assertions on typed errors: one reason per failure, and a message that says what differed. */
import { NlaError } from '../../src/errors';

/** Runs fn (sync or async) and checks that it throws/rejects an NlaError with `code` (and a matching message). */
export async function expectNlaError(fn: () => unknown, code: string, message?: RegExp): Promise<NlaError> {
  let caught: unknown;
  let threw = false;
  try {
    await fn();
  } catch (e) {
    threw = true;
    caught = e;
  }
  if (!threw) throw new Error(`expected NlaError ${code}, but the call succeeded`);
  if (!(caught instanceof NlaError)) {
    throw new Error(`expected NlaError ${code}, got ${caught instanceof Error ? `${caught.name}: ${caught.message}` : String(caught)}`);
  }
  if (caught.code !== code) throw new Error(`expected ${code}, got ${caught.code}: ${caught.message}`);
  if (message && !message.test(caught.message)) throw new Error(`${code} message ${JSON.stringify(caught.message)} does not match ${message}`);
  return caught;
}
