/** Loads a LinearHead from a file: a torch checkpoint (.pt, read with a restricted unpickler) or .safetensors. */
import { LinearHead } from './head';
import { loadNative, toNlaError } from './native';

export async function loadLinearHead(path: string): Promise<LinearHead> {
  if (path.endsWith('.safetensors')) {
    const { binding } = loadNative('cpu');
    let st;
    try {
      st = await binding.readSafetensors(path, 'head');
    } catch (e) {
      throw toNlaError(e);
    }
    return LinearHead.fromSafetensors(st.tensors, path);
  }
  return LinearHead.fromTorchFile(path);
}
