#!/usr/bin/env node
// Prints the C++ sources of the CPU variant for binding.gyp (`<!@(node scripts/gyp-sources.js)`): every .cc under
// native/ except the Node binding folder, plus native/addon/*.cc. The same rule as CMakeLists.txt, so a new source
// file needs no edit here.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const out = [];
(function walk(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.name.endsWith('.cc')) out.push(path.relative(root, p).split(path.sep).join('/'));
  }
})(path.join(root, 'native'));
// engine sources first, the binding last (its folder is not part of the engine)
const engine = out.filter((p) => !p.startsWith('native/addon/'));
const addon = out.filter((p) => /^native\/addon\/[^/]+\.cc$/.test(p));
process.stdout.write([...engine, ...addon].join('\n') + '\n');
