/**
 * Reads a torch head (`linear_head.pt`) on a worker thread. The restricted unpickler and the zip reader are
 * JavaScript: run on the caller's thread, a hostile file could hold its event loop (every request of a service)
 * for as long as parsing takes. Here the file's bytes are transferred to a short-lived worker (no copy), parsed
 * there with the same reader and the same bounds, and the two float32 arrays are transferred back. The worker's
 * JS heap is capped, so a pickle that still managed to build too many objects ends that worker with a typed
 * error instead of aborting the process.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { NlaError, isNlaErrorCode } from './errors';
import { LinearHead, type HeadExpectation } from './head';

const KIND = 'nla-ar:torch-head';
/** Pickle objects live on this heap; tensor data (ArrayBuffers) does not count against it. */
const WORKER_HEAP_MB = 256;

interface Request {
  readonly kind: typeof KIND;
  readonly bytes: ArrayBuffer;
  readonly name: string;
  readonly expect?: HeadExpectation;
  /** Set when running from the TypeScript sources (tests): the module to run and the compiler to run it with. */
  readonly entry?: string;
  readonly typescript?: string;
}

type Reply =
  | { ok: true; weight: ArrayBuffer; bias: ArrayBuffer; inDim: number; outDim: number }
  | { ok: false; code: string; message: string };

export interface ParsedHead {
  readonly weight: Float32Array;
  readonly bias: Float32Array;
  readonly inDim: number;
  readonly outDim: number;
}

/** In a source checkout under ts-jest there is no compiled worker script: compile the sources as they load. */
const DEV_BOOTSTRAP = `
const { workerData } = require('node:worker_threads');
const fs = require('node:fs');
const ts = require(workerData.typescript);
require.extensions['.ts'] = (m, filename) => {
  const out = ts.transpileModule(fs.readFileSync(filename, 'utf8'), {
    fileName: filename,
    compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
  });
  m._compile(out.outputText, filename);
};
require(workerData.entry);
`;

function startWorker(request: Request): Worker {
  const options = { transferList: [request.bytes], resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB } };
  if (__filename.endsWith('.ts')) {
    const dev: Request = { ...request, entry: __filename, typescript: require.resolve('typescript') };
    return new Worker(DEV_BOOTSTRAP, { ...options, eval: true, workerData: dev });
  }
  return new Worker(__filename, { ...options, workerData: request });
}

/** Parses `bytes` (transferred: the caller's ArrayBuffer is detached) as a torch head on a worker thread. */
export function parseTorchHeadOffThread(bytes: ArrayBuffer, name: string, expect?: HeadExpectation): Promise<ParsedHead> {
  return new Promise<ParsedHead>((resolve, reject) => {
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      fn();
    };
    let worker: Worker;
    try {
      worker = startWorker({ kind: KIND, bytes, name, expect });
    } catch (err) {
      reject(new NlaError('ERR_NLA_INTERNAL', `${name}: cannot start a worker thread to read the head: ${(err as Error).message}`, { cause: err }));
      return;
    }
    worker.once('message', (reply: Reply) =>
      settle(() => {
        if (!reply.ok) {
          reject(new NlaError(isNlaErrorCode(reply.code) ? reply.code : 'ERR_NLA_INTERNAL', reply.message));
          return;
        }
        // Views made here, in the caller's realm (the arrays crossed threads as bare ArrayBuffers).
        resolve({ weight: new Float32Array(reply.weight), bias: new Float32Array(reply.bias), inDim: reply.inDim, outDim: reply.outDim });
      }),
    );
    worker.once('error', (err: Error & { code?: string }) =>
      settle(() => {
        if (err.code === 'ERR_WORKER_OUT_OF_MEMORY') {
          reject(new NlaError('ERR_NLA_OUT_OF_MEMORY', `${name}: reading it needs more than the ${WORKER_HEAP_MB} MB a linear head's pickle can need`, { cause: err }));
        } else {
          reject(new NlaError('ERR_NLA_INTERNAL', `${name}: the head reader failed: ${err.message}`, { cause: err }));
        }
      }),
    );
    worker.once('exit', (code) => settle(() => reject(new NlaError('ERR_NLA_INTERNAL', `${name}: the head reader's worker exited (code ${code}) without a result`))));
  });
}

/** A buffer of exactly the array's bytes, safe to transfer. */
function ownBuffer(a: Float32Array, other?: ArrayBufferLike): ArrayBuffer {
  if (a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && a.buffer !== other && a.buffer instanceof ArrayBuffer) return a.buffer;
  return a.slice().buffer as ArrayBuffer;
}

function runWorker(port: NonNullable<typeof parentPort>, request: Request): void {
  let reply: Reply;
  const transfer: ArrayBuffer[] = [];
  try {
    const head = LinearHead.fromTorchBuffer(Buffer.from(request.bytes), request.name, request.expect);
    const weight = ownBuffer(head.weight);
    const bias = ownBuffer(head.bias, weight);
    transfer.push(weight, bias);
    reply = { ok: true, weight, bias, inDim: head.inDim, outDim: head.outDim };
  } catch (err) {
    const e = err as { code?: unknown; message?: unknown };
    reply = {
      ok: false,
      code: err instanceof NlaError ? err.code : typeof e?.code === 'string' && isNlaErrorCode(e.code) ? e.code : 'ERR_NLA_INTERNAL',
      message: typeof e?.message === 'string' ? e.message : String(err),
    };
  }
  port.postMessage(reply, transfer);
}

if (!isMainThread && parentPort && (workerData as Partial<Request> | null)?.kind === KIND) {
  runWorker(parentPort, workerData as Request);
}
