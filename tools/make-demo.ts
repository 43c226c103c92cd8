/** `npm run build:demo`: writes the demo files the package ships to <package>/demo (see tools/demo.ts). */
import * as path from 'node:path';
import { writeDemoFiles } from './demo';

const dir = path.resolve(__dirname, '..', '..', 'demo'); // run from dist-tools/tools/
const t0 = Date.now();
const files = writeDemoFiles(dir);
console.log(`demo files in ${files.dir} (${Date.now() - t0} ms)`);
