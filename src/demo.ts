/**
 * The demo files the package ships in <package>/demo: a tiny synthetic Gemma 4 (q8_0, the real Gemma-4 layout,
 * random weights), a PEFT adapter shaped like the released AR with its linear_head.pt, and one shaped like the
 * released AV with its nla_meta.yaml. They are made by the synthetic generator (test tooling, `npm run
 * build:demo`); their numbers mean nothing.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NlaError } from './errors';

export const DEMO_MANIFEST = 'manifest.json';

/** What manifest.json in the demo folder records. */
export interface DemoManifest {
  version: string;
  /** The block whose output the demo AR reads. */
  layer: number;
  /** A block of the base model whose activation the demo round trip uses. */
  activationLayer: number;
  nLayer: number;
  model: { tensors: number; bytes: number };
  adapterModules: number;
}

export interface ShippedDemoFiles {
  readonly dir: string;
  readonly model: string;
  /** The AR folder (adapter_config.json, adapter_model.safetensors, linear_head.pt). */
  readonly adapter: string;
  /** The AV folder (with nla_meta.yaml). */
  readonly av: string;
  readonly layer: number;
  readonly activationLayer: number;
}

/** The shipped demo files (ERR_NLA_IO naming what to run when they are missing, e.g. in a fresh git checkout). */
export function demoFiles(dir: string = path.resolve(__dirname, '..', 'demo')): ShippedDemoFiles {
  const manifestPath = path.join(dir, DEMO_MANIFEST);
  let m: DemoManifest;
  try {
    m = JSON.parse(fs.readFileSync(manifestPath, 'utf8')) as DemoManifest;
  } catch (e) {
    throw new NlaError('ERR_NLA_IO', `the demo files are missing (${manifestPath}): in a git checkout, run \`npm run build\` first`, { cause: e });
  }
  return {
    dir,
    model: path.join(dir, 'model.gguf'),
    adapter: path.join(dir, 'adapter'),
    av: path.join(dir, 'av'),
    layer: m.layer,
    activationLayer: m.activationLayer,
  };
}
