/**
 * The embedded demo files (synthetic q8_0 Gemma-4 + PEFT adapter + linear_head.pt), generated once per machine
 * into .cache/test-models/demo (ensureDemoFiles writes a temp folder and renames it into place, so parallel jest
 * workers and reruns share one copy).
 */
import * as path from 'node:path';
import { ensureDemoFiles, type DemoFiles } from '../../src/synthetic';
import { CACHE } from './models';

export function demoFiles(): DemoFiles {
  return ensureDemoFiles(path.join(CACHE, 'demo'));
}
