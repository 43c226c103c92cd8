/** Loads a LinearHead from a file: a torch checkpoint (.pt, read with a restricted unpickler) or .safetensors. */
import { statSync } from 'node:fs';
import { LinearHead, maxHeadFileBytes, readRegularFile, type HeadExpectation } from './head';
import { NlaError } from './errors';
import { loadNative, toNlaError } from './native';

/**
 * `expect` (e.g. `{ inDim: d_model, outDim: d_model }`) bounds what the file may declare: sizes are checked
 * against it before any tensor data is read or decoded.
 */
export async function loadLinearHead(path: string, expect?: HeadExpectation): Promise<LinearHead> {
  if (path.endsWith('.safetensors')) {
    // The native reader maps the file and converts every tensor: bound the file first (the mapping itself
    // refuses FIFOs and other non-regular files).
    const maxBytes = maxHeadFileBytes(expect);
    let size = 0;
    try {
      size = statSync(path).size;
    } catch {
      /* the native reader reports the I/O error */
    }
    if (size > maxBytes) throw new NlaError('ERR_NLA_HEAD_INVALID', `${path}: ${size} bytes is far too large for a linear head`);
    const { binding } = loadNative('cpu');
    let st;
    try {
      st = await binding.readSafetensors(path, 'head');
    } catch (e) {
      throw toNlaError(e);
    }
    return LinearHead.fromSafetensors(st.tensors, path, expect);
  }
  return LinearHead.fromTorchFile(path, expect);
}
