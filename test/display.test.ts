/**
 * Rich display (issue 12): results print compactly (ActivationVector's util.inspect), stay Float32Arrays that
 * index and serialize losslessly, and the HTML/SVG helpers render round trips, the controls and cross-row
 * identity with escaped text and bars/cells that encode the numbers; `nla-ar round-trip --html` writes them.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { inspect } from 'node:util';
import {
  ActivationVector, Reconstructor, barChart, controlsTable, crossRowHeatmap, crossRowIdentity, crossRowTable, roundTripTable,
  roundTripReport, summarizeControls, formatVector,
} from '../src';
import { demoFiles } from './helpers/demo';
import { ensureLib, LIB, ROOT } from './helpers/build';

const files = demoFiles();
const ACT = files.config.nLayer - 1; // a base-model block to take activations from
let ar: Reconstructor;
let tmp: string;
beforeAll(async () => {
  ar = await Reconstructor.load({ model: files.model, adapter: files.adapter, layer: files.layer, device: 'cpu' });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nla-display-'));
});
afterAll(async () => {
  await ar.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('ActivationVector', () => {
  test('reconstruct() and roundTrip() return Float32Arrays that print as a one-line summary', async () => {
    const v = await ar.reconstruct('<explanation>compact printing</explanation>');
    expect(v).toBeInstanceOf(Float32Array);
    expect(v).toBeInstanceOf(ActivationVector);
    const d = files.config.nEmbd;
    const shown = inspect(v);
    expect(shown).toBe(`ActivationVector(${d}) ‖v‖ = ${(v as ActivationVector).norm.toFixed(4)} [${Array.from(v.slice(0, 6), (x) => x.toFixed(4)).join(', ')}, … ${d - 6} more]`);
    const rt = await ar.roundTrip({ activation: await ar.activation('some text', { layer: ACT }), explanation: 'x' });
    const nested = inspect(rt);
    expect(nested).toContain(`reconstruction: ActivationVector(${d})`);
    expect(nested.length).toBeLessThan(300); // not d numbers
  });

  test('it indexes, shares memory with view(), serializes every value, and keeps its class through subarray/map', () => {
    const raw = new Float32Array([3, 4, 0.5, -1, 2, 7, 1e-5, 9]);
    const v = ActivationVector.view(raw);
    expect(v.length).toBe(8);
    expect(v[1]).toBe(4);
    raw[0] = 6;
    expect(v[0]).toBe(6); // same memory
    expect(ActivationVector.view(v)).toBe(v);
    expect(JSON.parse(JSON.stringify({ v }))).toEqual({ v: Array.from(raw) }); // lossless (a Float32Array gives {"0":…})
    expect(JSON.stringify(new Float32Array([1]))).toBe('{"0":1}');
    expect(v.subarray(2)).toBeInstanceOf(ActivationVector);
    expect(v.map((x) => x * 2)[1]).toBe(8);
    expect(v.summary(2)).toEqual({ d: 8, norm: Math.hypot(...Array.from(raw)), first: [6, 4] });
    expect(formatVector(v, 2)).toMatch(/^‖v‖ = \d+\.\d{4}, d = 8, \[6\.0000, 4\.0000, …\]$/);
    expect(inspect(ActivationVector.view(new Float32Array([1e-5, 2e6])))).toContain('[1.000e-5, 2.000e+6]');
  });
});

describe('HTML and SVG', () => {
  const explanations = ['<explanation>tides & "moons"</explanation>', 'b', 'c'];

  test('tables escape the explanations and show every number', () => {
    const html = roundTripTable([{ cosine: 0.5, mse: 1, fve: 0.25 }, { cosine: -0.125, mse: 2.25 }], explanations.slice(0, 2));
    expect(html).not.toContain('<explanation>');
    expect(html).toContain('&lt;explanation&gt;tides &amp; &quot;moons&quot;&lt;/explanation&gt;');
    for (const n of ['0.5000', '1.0000', '0.2500', '-0.1250', '2.2500', '0.1875' /* mean cosine */]) expect(html).toContain(`>${n}<`);
    const c = summarizeControls([
      { cosine: 0.6, emptyCosine: 0.3, gibberishCosine: 0.2, contentDelta: 0.3 },
      { cosine: 0.4, emptyCosine: 0.3, gibberishCosine: 0.35, contentDelta: 0.1 },
    ]);
    const ct = controlsTable(c, explanations.slice(0, 2));
    expect(ct).toContain('<b>0.2000</b> ± 0.1414 (SD)');
  });

  test('bar heights are proportional to the values, around a zero line', () => {
    const svg = barChart({ title: 't', series: [{ name: 's', values: [0.5, -0.25], color: '#000' }] });
    const rects = [...svg.matchAll(/<rect x="[\d.]+" y="([\d.]+)" width="\d+" height="([\d.]+)" fill="#000"><title>/g)].map((m) => ({ y: Number(m[1]), h: Number(m[2]) }));
    expect(rects.length).toBe(2);
    expect(rects[0].h / rects[1].h).toBeCloseTo(2, 1);
    // the positive bar ends where the negative one starts (the zero line)
    expect(rects[0].y + rects[0].h).toBeCloseTo(rects[1].y, 0);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
  });

  test('cross-row identity: the table marks each row\'s best and the heatmap has n × n cells', () => {
    const recs = [[1, 0, 0], [0, 1, 0], [0.9, 0.1, 0]].map((r) => Float32Array.from(r));
    const origs = [[1, 0, 0], [0, 1, 0], [0, 0, 1]].map((r) => Float32Array.from(r));
    const cri = crossRowIdentity(recs, origs);
    const html = crossRowTable(cri, explanations);
    expect((html.match(/font-weight:bold/g) ?? []).length).toBe(3); // one best per row
    expect(html).toContain('top-1 0.667 (chance 0.333)');
    const svg = crossRowHeatmap(cri);
    expect((svg.match(/<rect [^>]*fill="rgb[^>]*><title>rec \d vs orig \d: /g) ?? []).length).toBe(9);
  });

  test('nla-ar round-trip --html --controls writes a page with the round trips, controls and cross-row identity', async () => {
    ensureLib();
    const texts = ['The harbour was grey.', 'She stirred the flour into the butter.', 'The train left at noon.'];
    const items = await Promise.all(texts.map(async (t, i) => ({ activation: Array.from(await ar.activation(t, { layer: ACT })), explanation: `<explanation>${explanations[i]}</explanation>` })));
    const jsonl = path.join(tmp, 'items.jsonl');
    fs.writeFileSync(jsonl, items.map((it) => JSON.stringify(it)).join('\n'));
    const report = path.join(tmp, 'report.html');
    const r = spawnSync(process.execPath, [path.join(LIB, 'cli.js'), 'round-trip', '--model', files.model, '--adapter', files.adapter, '--layer', String(files.layer),
      '--device', 'cpu', '--file', jsonl, '--controls', '--html', report, '--json'], { cwd: ROOT, encoding: 'utf8' });
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { results: { cosine: number }[]; controls: { mean: { contentDelta: number } } };
    const html = fs.readFileSync(report, 'utf8');
    expect(html.startsWith('<!doctype html>')).toBe(true);
    for (const h of ['Round trips', 'Controls (empty and gibberish explanations)', 'Cross-row identity']) expect(html).toContain(`<h2 style="font-size:16px">${h}</h2>`);
    for (const res of out.results) expect(html).toContain(`>${res.cosine.toFixed(4)}<`);
    expect(html).toContain(out.controls.mean.contentDelta.toFixed(4));
    expect((html.match(/<svg /g) ?? []).length).toBe(3);
    // the same page from the API
    expect(roundTripReport({ explanations: items.map((i) => i.explanation), results: out.results as never }).length).toBeGreaterThan(0);
  });
});
