/**
 * `nla-ar pull REPO[:FILE]`: downloads a Hugging Face repository (or one file of it) into the Hugging Face cache
 * (Python's layout, shared with huggingface_hub) and prints the local path. A second run finds it in the cache.
 */
import { formatProgress, hubDownload, hubSnapshot, parseHfUri, type DownloadProgress, type HubOptions } from '../hub';
import { UsageError } from './usage';

export interface PullArgs {
  revision?: string;
  offline: boolean;
  json: boolean;
}

/** Progress on stderr: a line rewritten in place on a terminal, else one line per file every few seconds. */
export function progressPrinter(stream: NodeJS.WriteStream = process.stderr): (p: DownloadProgress) => void {
  let last = 0;
  return (p) => {
    const now = Date.now();
    if (stream.isTTY) {
      stream.write(`\r${formatProgress(p)}\x1b[K${p.done ? '\n' : ''}`);
    } else if (p.done || now - last > 5000) {
      last = now;
      stream.write(`${formatProgress(p)}\n`);
    }
  };
}

export async function pull(args: PullArgs, positionals: string[]): Promise<void> {
  if (positionals.length !== 1) throw new UsageError('pull takes one argument: OWNER/REPO, OWNER/REPO:FILE or hf:OWNER/REPO/FILE');
  const target = positionals[0];
  let repo: string;
  let file: string | undefined;
  let revision = args.revision;
  const uri = parseHfUri(target);
  if (uri) {
    ({ repo, file } = uri);
    if (uri.revision) {
      if (revision && revision !== uri.revision) throw new UsageError(`--revision ${revision} contradicts the URI's @${uri.revision}`);
      revision = uri.revision;
    }
  } else {
    const i = target.indexOf(':');
    repo = i < 0 ? target : target.slice(0, i);
    file = i < 0 ? undefined : target.slice(i + 1);
    if (file === '') throw new UsageError('pull OWNER/REPO:FILE needs a file name after the colon');
  }
  const hub: HubOptions = {
    ...(revision ? { revision } : {}),
    ...(args.offline ? { offline: true } : {}),
    ...(args.json ? {} : { onProgress: progressPrinter() }),
  };
  if (file !== undefined) {
    const f = await hubDownload(repo, file, hub);
    if (args.json) console.log(JSON.stringify(f));
    else console.log(f.path);
  } else {
    const snap = await hubSnapshot(repo, hub);
    if (args.json) console.log(JSON.stringify(snap));
    else console.log(snap.dir);
  }
}
