/**
 * worker.terminate() while that worker's native call runs. The parent must survive, and so must the other workers.
 * The binding used to abort the whole process here (issue 11, item 2): a finished job's completion callback
 * threw into a terminating environment. Jobs now swallow that (native/addon/common.cc, Job::OnOK), and this guards it.
 */
import { LIB } from './helpers/build';
import { demoFiles } from './helpers/demo';
import { runChild } from './helpers/child';

const files = demoFiles();
const J = JSON.stringify;
const LOAD = J({ model: files.model, adapter: files.adapter, layer: files.layer, device: 'cpu', threads: 1 });

test('terminating a worker mid-call leaves the parent (and another worker) alive', async () => {
  const r = await runChild(
    `const { Worker } = require('node:worker_threads');
    const code = \`
      const { parentPort, workerData } = require('node:worker_threads');
      const nla = require(${J(LIB)});
      (async () => {
        const ar = await nla.Reconstructor.load(${LOAD});
        parentPort.postMessage('loaded');
        for (;;) { const p = ar.reconstruct('a long explanation '.repeat(40)); parentPort.postMessage('calling'); await p; }
      })();\`;
    const start = () => new Worker(code, { eval: true });
    const survivor = start();
    for (let round = 0; round < 5; round++) {
      const w = start();
      await new Promise((resolve) => w.on('message', (m) => m === 'calling' && resolve()));
      await new Promise((r) => setTimeout(r, 5)); // inside the native job
      await w.terminate();
    }
    await survivor.terminate();
    emit({ parentAlive: true });`,
    { timeoutMs: 120_000 },
  );
  expect({ status: r.status, signal: r.signal, timedOut: r.timedOut, lines: r.lines }).toEqual({
    status: 0,
    signal: null,
    timedOut: false,
    lines: [{ parentAlive: true }],
  });
});
