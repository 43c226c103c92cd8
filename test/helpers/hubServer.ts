/**
 * A stand-in for the Hugging Face Hub on 127.0.0.1, serving repositories a test creates. It answers the requests
 * nla-ar makes (found by reading @huggingface/hub's modelInfo / pathsInfo and our downloader):
 *
 *   GET  /api/models/OWNER/NAME/revision/REV   → { sha, siblings, ... }       (modelInfo)
 *   POST /api/models/OWNER/NAME/paths-info/REV → [{ type, path, oid, size, lfs? }] (pathsInfo)
 *   GET  /OWNER/NAME/resolve/REV/FILE          → the bytes (Range supported); LFS files redirect (302) to a
 *                                                 second server, the "CDN", on another port (another origin)
 *
 * Private repositories want `Authorization: Bearer <token>` (else 401, as the Hub answers). `drop` makes the next
 * downloads of a file close the connection after some bytes; `corrupt` serves wrong bytes for a file.
 */
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeCommit {
  sha: string;
  files: Record<string, Buffer>;
}

export interface FakeRepo {
  id: string;
  /** Newest last; `main` points at the last one. */
  commits: FakeCommit[];
  /** Files stored in LFS (served through the CDN, etag = sha256). */
  lfs?: string[];
  private?: boolean;
}

export interface LoggedRequest {
  server: 'hub' | 'cdn';
  method: string;
  url: string;
  range?: string;
  authorization?: string;
}

export interface FakeHub {
  url: string;
  cdnUrl: string;
  requests: LoggedRequest[];
  /** The next `times` downloads of `file` stop after `afterBytes` bytes (the socket is destroyed). */
  drop(file: string, afterBytes: number, times?: number): void;
  /** The next download of `file` serves wrong bytes (one flipped, same length). */
  corrupt(file: string): void;
  /** Sends `file` in small chunks with pauses, so a test can abort mid-way. */
  slow(file: string): void;
  close(): Promise<void>;
}

export function gitBlobOid(data: Buffer): string {
  return createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
}
export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
export function fakeSha(seed: string): string {
  return createHash('sha1').update(seed).digest('hex');
}

function listen(server: http.Server): Promise<string> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));
}

/** `cdnHost`: the host name in the CDN's URL (Python's huggingface_hub follows redirects to the same host name, so a
 *  cross-check with it needs 'localhost' there). */
export async function startFakeHub(repos: FakeRepo[], token = 'hf_fake_token_for_tests', cdnHost = '127.0.0.1'): Promise<FakeHub> {
  const requests: LoggedRequest[] = [];
  const drops = new Map<string, { after: number; times: number }>();
  const corrupted = new Set<string>();
  const slowed = new Set<string>();
  const byId = new Map(repos.map((r) => [r.id, r]));
  const blobs = new Map<string, { data: Buffer; file: string }>();
  for (const r of repos) for (const c of r.commits) for (const [f, d] of Object.entries(c.files)) if (r.lfs?.includes(f)) blobs.set(sha256(d), { data: d, file: f });

  const json = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
  const commitOf = (repo: FakeRepo, rev: string) => (rev === 'main' || rev === 'HEAD' ? repo.commits[repo.commits.length - 1] : repo.commits.find((c) => c.sha === rev));
  const authorized = (repo: FakeRepo, req: http.IncomingMessage) => !repo.private || req.headers.authorization === `Bearer ${token}`;

  /** Serves `data` honouring Range, possibly dropping the connection or trickling. */
  const serveBytes = (req: http.IncomingMessage, res: http.ServerResponse, file: string, original: Buffer, headers: Record<string, string>) => {
    let data = original;
    if (corrupted.delete(file)) {
      data = Buffer.from(original);
      data[data.length >> 1] ^= 0xff;
    }
    let start = 0;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (m) {
      start = Number(m[1]);
      if (start >= data.length) {
        res.writeHead(416, { 'Content-Range': `bytes */${data.length}` });
        res.end();
        return;
      }
    }
    const body = data.subarray(start);
    const head: Record<string, string> = { ...headers, 'Content-Type': 'application/octet-stream', 'Content-Length': String(body.length), 'Accept-Ranges': 'bytes' };
    if (m) head['Content-Range'] = `bytes ${start}-${data.length - 1}/${data.length}`;
    res.writeHead(m ? 206 : 200, head);
    const drop = drops.get(file);
    if (drop && drop.times > 0) {
      drop.times--;
      const n = Math.max(0, Math.min(body.length, drop.after - start));
      res.write(body.subarray(0, n), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    if (slowed.has(file)) {
      let off = 0;
      const tick = () => {
        if (res.destroyed) return;
        if (off >= body.length) return void res.end();
        res.write(body.subarray(off, off + 4096));
        off += 4096;
        setTimeout(tick, 20);
      };
      tick();
      return;
    }
    res.end(body);
  };

  const cdn = http.createServer((req, res) => {
    requests.push({ server: 'cdn', method: req.method ?? '', url: req.url ?? '', range: req.headers.range, authorization: req.headers.authorization });
    const m = /^\/blobs\/([0-9a-f]{64})$/.exec(req.url ?? '');
    const blob = m && blobs.get(m[1]);
    if (!blob) return json(res, 404, { error: 'no such blob' });
    serveBytes(req, res, blob.file, blob.data, { ETag: `"${m![1]}"` });
  });
  const cdnUrl = (await listen(cdn)).replace('127.0.0.1', cdnHost);

  const hub = http.createServer((req, res) => {
    requests.push({ server: 'hub', method: req.method ?? '', url: req.url ?? '', range: req.headers.range, authorization: req.headers.authorization });
    const url = new URL(req.url ?? '/', 'http://x');
    let m = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(url.pathname);
    if (m && req.method === 'GET') {
      const repo = byId.get(m[1]);
      if (!repo || !authorized(repo, req)) return json(res, 401, { error: 'Invalid username or password.' });
      const c = commitOf(repo, decodeURIComponent(m[2]));
      if (!c) return json(res, 404, { error: 'Invalid rev id: ' + m[2] }, { 'X-Error-Code': 'RevisionNotFound' });
      return json(res, 200, {
        _id: fakeSha(repo.id).slice(0, 24), id: repo.id, private: !!repo.private, sha: c.sha, downloads: 0, likes: 0, gated: false,
        lastModified: '2026-01-01T00:00:00.000Z', siblings: Object.keys(c.files).map((rfilename) => ({ rfilename })),
      });
    }
    m = /^\/api\/models\/([^/]+\/[^/]+)\/paths-info\/([^/]+)$/.exec(url.pathname);
    if (m && req.method === 'POST') {
      const repo = byId.get(m[1]);
      let raw = '';
      req.on('data', (c: Buffer) => (raw += c.toString()));
      req.on('end', () => {
        if (!repo || !authorized(repo, req)) return json(res, 401, { error: 'Invalid username or password.' });
        const c = commitOf(repo, decodeURIComponent(m![2]));
        if (!c) return json(res, 404, { error: 'Invalid rev id' }, { 'X-Error-Code': 'RevisionNotFound' });
        const { paths } = JSON.parse(raw) as { paths: string[] };
        json(res, 200, paths.filter((p) => p in c.files).map((p) => {
          const d = c.files[p];
          return { type: 'file', path: p, oid: gitBlobOid(d), size: d.length, ...(repo.lfs?.includes(p) ? { lfs: { oid: sha256(d), size: d.length, pointerSize: 134 } } : {}) };
        }));
      });
      return;
    }
    m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (m && (req.method === 'GET' || req.method === 'HEAD')) { // Python's huggingface_hub asks with HEAD first
      const repo = byId.get(m[1]);
      if (!repo || !authorized(repo, req)) return json(res, 401, { error: 'Invalid username or password.' }, { 'X-Error-Code': 'RepoNotFound' });
      const c = commitOf(repo, decodeURIComponent(m[2]));
      const file = m[3].split('/').map(decodeURIComponent).join('/');
      const d = c?.files[file];
      if (!c || !d) return json(res, 404, { error: 'Entry not found' }, { 'X-Error-Code': 'EntryNotFound' });
      if (repo.lfs?.includes(file)) {
        res.writeHead(302, { Location: `${cdnUrl}/blobs/${sha256(d)}`, 'X-Repo-Commit': c.sha, 'X-Linked-Etag': `"${sha256(d)}"`, 'X-Linked-Size': String(d.length) });
        return void res.end();
      }
      return serveBytes(req, res, file, d, { ETag: `"${gitBlobOid(d)}"`, 'X-Repo-Commit': c.sha });
    }
    json(res, 404, { error: `unexpected request ${req.method} ${req.url}` });
  });
  const url = await listen(hub);

  return {
    url,
    cdnUrl,
    requests,
    drop: (file, afterBytes, times = 1) => drops.set(file, { after: afterBytes, times }),
    corrupt: (file) => corrupted.add(file),
    slow: (file) => slowed.add(file),
    close: () =>
      Promise.all([hub, cdn].map((s) => new Promise<void>((resolve) => {
        s.closeAllConnections();
        s.close(() => resolve());
      }))).then(() => undefined),
  };
}
