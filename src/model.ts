/**
 * Opening a base model once for the classes that run on it (Reconstructor, Verbalizer, Autoencoder): the
 * binary chosen for the device, the GGUF mapped and bound by the engine, and adapters loaded onto it.
 */
import * as fs from 'node:fs';
import { NlaError } from './errors';
import { resolveModelPath } from './hub';
import { loadNative, toNlaError, type Device, type NativeAdapter, type NativeBinding, type NativeModel } from './native';

/** A base model opened in the engine, with the binding and the reasons the backend was chosen. */
export interface OpenedModel {
  readonly native: NativeModel;
  readonly binding: NativeBinding;
  readonly backend: 'cpu' | 'cuda';
  readonly reasons: string[];
}

/** Opens `model`: a GGUF path, or `hf:OWNER/REPO[@REV]/FILE.gguf` (downloaded into the Hugging Face cache once). */
export async function openBaseModel(o: { model: string; device: Device; threads?: number; numerics: 'exact' | 'llamacpp' }): Promise<OpenedModel> {
  const { binding, backend, reasons } = loadNative(o.device);
  const model = await resolveModelPath(o.model);
  if (!fs.existsSync(model)) throw new NlaError('ERR_NLA_IO', `model file not found: ${model}`);
  try {
    const native = await binding.openModel(model, { threads: o.threads, device: backend, gelu: o.numerics === 'llamacpp' ? 'fp16-table' : 'exact' });
    return { native, binding, backend, reasons };
  } catch (e) {
    throw toNlaError(e);
  }
}

/** Loads a PEFT adapter folder onto an opened model. */
export async function loadAdapterDir(native: NativeModel, dir: string): Promise<NativeAdapter> {
  if (!fs.existsSync(dir)) throw new NlaError('ERR_NLA_IO', `adapter folder not found: ${dir}`);
  try {
    return await native.loadAdapter(dir);
  } catch (e) {
    throw toNlaError(e);
  }
}
