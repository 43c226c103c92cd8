/**
 * The tests' demo files: the generator's 8-block tiny Gemma-4 (q8_0) + a PEFT adapter shaped like the released AR
 * + linear_head.pt + the LoRA as a llama.cpp GGUF, written once per machine into .cache/test-models/demo
 * (writeDemoFiles builds a temp folder and renames it into place, so parallel jest workers and reruns share one
 * copy). The package's shipped demo (tools/demo.ts demoModelConfig, 35 blocks) is tested where it is used: the
 * `demo` command and the packed tarball.
 */
import * as path from 'node:path';
import { writeDemoFiles, type DemoFiles } from '../../tools/demo';
import { tinyGemma4Config } from '../../tools/synthetic';
import { CACHE } from './models';

export function demoFiles(): DemoFiles {
  const config = tinyGemma4Config({ weightType: 'q8_0', seed: 20240601, name: 'nla-ar-demo-gemma4-tiny' });
  return writeDemoFiles(path.join(CACHE, 'demo'), { config, layer: 6, activationLayer: config.nLayer - 1, loraGguf: true });
}
