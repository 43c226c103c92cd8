// A minimal HTTP service embedding nla-ar: one loaded Reconstructor shared by all requests.
//
//   node examples/service/server.mjs                      # the shipped demo files (synthetic weights)
//   NLA_MODEL=gemma-4-E2B-Q4_K_M.gguf NLA_ADAPTER=./ar PORT=8080 node examples/service/server.mjs
//
//   curl -s localhost:8080/reconstruct -d '{"explanation": "<explanation>tides</explanation>"}'
//   → {"d":1536,"norm":…,"reconstruction":[…]}
//
// Plain node:http, no framework. Requests are queued by the Reconstructor (one native job at a time); a client
// that disconnects aborts its job. Errors are JSON with the NlaError code. `nla-ar serve` is the full server.
import * as http from 'node:http';
import { pathToFileURL } from 'node:url';
import { Reconstructor, NlaError, demoFiles } from 'nla-ar';

const MAX_BODY = 1 << 20;
const CLIENT_ERRORS = new Set(['ERR_NLA_INVALID_ARG', 'ERR_NLA_CONTEXT_OVERFLOW']);

function send(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) });
  res.end(data);
}

function readJson(req) {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks = [];
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(Object.assign(new Error(`body larger than ${MAX_BODY} bytes`), { status: 413 }));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}'));
      } catch {
        reject(Object.assign(new Error('the body is not JSON'), { status: 400 }));
      }
    });
    req.on('error', reject);
  });
}

export async function start({ model, adapter, port = 8080, host = '127.0.0.1' } = {}) {
  const files = model ? { model, adapter: adapter ?? null } : demoFiles();
  const ar = await Reconstructor.load({ model: files.model, adapter: files.adapter });

  const server = http.createServer(async (req, res) => {
    try {
      if (req.method === 'GET' && req.url === '/healthz') {
        return send(res, 200, { ok: true, model: ar.info.model.path, backend: ar.info.backend, d: ar.info.model.nEmbd, layer: ar.info.layer });
      }
      if (req.method === 'POST' && req.url === '/reconstruct') {
        const body = await readJson(req);
        const ac = new AbortController();
        res.on('close', () => { if (!res.writableFinished) ac.abort(); });
        if (Array.isArray(body.explanations)) {
          const vs = await ar.reconstruct(body.explanations, { signal: ac.signal });
          return send(res, 200, { d: ar.info.model.nEmbd, reconstructions: vs.map((v) => Array.from(v)) });
        }
        const v = await ar.reconstruct(body.explanation, { signal: ac.signal });
        return send(res, 200, { d: v.length, norm: Math.hypot(...v), reconstruction: Array.from(v) });
      }
      send(res, 404, { error: 'not found: POST /reconstruct {"explanation": "..."} or GET /healthz' });
    } catch (e) {
      if (e instanceof NlaError) return send(res, CLIENT_ERRORS.has(e.code) ? 400 : e.code === 'ERR_NLA_ABORTED' ? 499 : 500, { error: e.message, code: e.code });
      send(res, e.status ?? 500, { error: e.message });
    }
  });
  await new Promise((resolve) => server.listen(port, host, resolve));
  const { port: actual } = server.address();
  return {
    url: `http://${host}:${actual}`,
    async close() {
      await new Promise((resolve) => server.close(resolve));
      await ar.close();
    },
  };
}

// Run directly: start, print the URL, stop cleanly on SIGINT/SIGTERM.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const svc = await start({ model: process.env.NLA_MODEL, adapter: process.env.NLA_ADAPTER, port: Number(process.env.PORT ?? 8080), host: process.env.HOST ?? '127.0.0.1' });
  console.log(`nla-ar service listening on ${svc.url}`);
  const stop = async () => {
    await svc.close();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
