/**
 * examples/service/server.mjs, run as a user would (`node examples/service/server.mjs`, PORT=0 on 127.0.0.1) on
 * the shipped demo files: one POST /reconstruct must return what the API returns for the same explanation, bad
 * input must be a 400 with the NlaError code, and SIGTERM must stop it cleanly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { Reconstructor } from '../src';
import { demoFiles } from '../src/demo';
import { ensureLib, ROOT } from './helpers/build';

let proc: ChildProcess;
let url: string;

beforeAll(async () => {
  ensureLib();
  proc = spawn(process.execPath, [path.join(ROOT, 'examples', 'service', 'server.mjs')], { cwd: ROOT, env: { ...process.env, PORT: '0', HOST: '127.0.0.1' } });
  let err = '';
  proc.stderr!.on('data', (c: Buffer) => (err += c));
  url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the service did not start:\n${out}\n${err}`)), 60_000);
    proc.stdout!.on('data', (c: Buffer) => {
      out += c;
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on('exit', (code) => reject(new Error(`the service exited (${code}):\n${out}\n${err}`)));
  });
}, 90_000);

afterAll(() => {
  if (proc.exitCode === null) proc.kill('SIGKILL');
});

test('POST /reconstruct returns the API\'s reconstruction; bad input is a 400 naming the code; SIGTERM stops it', async () => {
  const explanation = '<explanation>a request to the example service</explanation>';
  const res = await fetch(`${url}/reconstruct`, { method: 'POST', body: JSON.stringify({ explanation }) });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { d: number; reconstruction: number[] };
  const demo = demoFiles();
  const ar = await Reconstructor.load({ model: demo.model, adapter: demo.adapter, device: 'cpu' });
  try {
    expect(body.reconstruction).toEqual(Array.from(await ar.reconstruct(explanation)));
    expect(body.d).toBe(ar.info.model.nEmbd);
  } finally {
    await ar.close();
  }
  const bad = await fetch(`${url}/reconstruct`, { method: 'POST', body: JSON.stringify({ explanation: 42 }) });
  expect(bad.status).toBe(400);
  expect(((await bad.json()) as { code: string }).code).toBe('ERR_NLA_INVALID_ARG');
  const exited = new Promise<number | null>((resolve) => proc.on('exit', resolve));
  proc.kill('SIGTERM');
  expect(await exited).toBe(0);
});
