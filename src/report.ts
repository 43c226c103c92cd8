/**
 * HTML tables and SVG charts for round trips, the controls and cross-row identity: strings, so they work in
 * tslab (`display.html(controlsTable(c))`, `display.svg(controlsChart(c))`), in any page, and in the CLI's
 * `round-trip --html report.html`. No dependencies, no scripts, inline styles only (notebook viewers and
 * GitHub strip <script> and often <style>); every text is escaped.
 */
import type { ControlsSummary, CrossRowIdentity } from './controls';

/** A round-trip outcome: RoundTripResult, or any object with these fields. */
export interface RoundTripRow {
  cosine: number;
  mse: number;
  fve?: number;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function num(x: number | undefined, digits = 4): string {
  return x === undefined ? '' : Number.isFinite(x) ? x.toFixed(digits) : String(x);
}

function clip(s: string, n = 90): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

const TABLE = 'border-collapse:collapse;font:13px/1.4 system-ui,sans-serif;margin:4px 0';
const TH = 'border-bottom:2px solid #888;padding:3px 8px;text-align:right';
const TD = 'border-bottom:1px solid #ddd;padding:3px 8px;text-align:right;font-variant-numeric:tabular-nums';
const TDL = 'border-bottom:1px solid #ddd;padding:3px 8px;text-align:left;max-width:40em';

function table(head: string[], rows: string[][], leftCols: number[] = [], caption?: string): string {
  const th = head.map((h, i) => `<th style="${leftCols.includes(i) ? TH.replace('right', 'left') : TH}">${escapeHtml(h)}</th>`).join('');
  const body = rows.map((r) => `<tr>${r.map((c, i) => `<td style="${leftCols.includes(i) ? TDL : TD}">${c}</td>`).join('')}</tr>`).join('\n');
  const cap = caption ? `<caption style="caption-side:bottom;text-align:left;color:#555;padding-top:4px">${escapeHtml(caption)}</caption>` : '';
  return `<table style="${TABLE}">${cap}<thead><tr>${th}</tr></thead>\n<tbody>\n${body}\n</tbody></table>`;
}

/** One row per item: explanation, cosine, direction-MSE, FVE (when present); then the mean. */
export function roundTripTable(results: readonly RoundTripRow[], explanations?: readonly string[]): string {
  const hasFve = results.some((r) => r.fve !== undefined);
  const head = ['#', ...(explanations ? ['explanation'] : []), 'cosine', 'direction-MSE', ...(hasFve ? ['FVE'] : [])];
  const rows = results.map((r, i) => [
    String(i + 1),
    ...(explanations ? [escapeHtml(clip(explanations[i] ?? ''))] : []),
    num(r.cosine),
    num(r.mse),
    ...(hasFve ? [num(r.fve)] : []),
  ]);
  if (results.length > 1) {
    const mean = (f: (r: RoundTripRow) => number | undefined) => {
      const v = results.map(f).filter((x): x is number => x !== undefined);
      return v.length ? v.reduce((a, b) => a + b, 0) / v.length : undefined;
    };
    rows.push(['<b>mean</b>', ...(explanations ? [''] : []), `<b>${num(mean((r) => r.cosine))}</b>`, `<b>${num(mean((r) => r.mse))}</b>`, ...(hasFve ? [`<b>${num(mean((r) => r.fve))}</b>`] : [])]);
  }
  return table(head, rows, explanations ? [1] : [], 'direction-MSE = 2(1 − cos) at scale √d; FVE = 1 − MSE / MSE of the mean predictor');
}

/** Per item: the explanation's cosine next to the empty and gibberish baselines, and the content delta. */
export function controlsTable(summary: ControlsSummary, explanations?: readonly string[]): string {
  const head = ['#', ...(explanations ? ['explanation'] : []), 'cosine', 'empty', 'gibberish', 'content Δ'];
  const rows = summary.items.map((r, i) => [
    String(i + 1),
    ...(explanations ? [escapeHtml(clip(explanations[i] ?? ''))] : []),
    num(r.cosine),
    num(r.emptyCosine),
    num(r.gibberishCosine),
    num(r.contentDelta),
  ]);
  const m = summary.mean;
  rows.push(['<b>mean</b>', ...(explanations ? [''] : []), ...[m.cosine, m.emptyCosine, m.gibberishCosine].map((x) => `<b>${num(x)}</b>`), `<b>${num(m.contentDelta)}</b> ± ${num(summary.contentDeltaSd)} (SD)`]);
  return table(head, rows, explanations ? [1] : [], 'content Δ = cosine − empty: what the explanation adds over the structural baseline');
}

/** Diverging colour for a cosine in [−1, 1]: blue (negative), white (0), red (positive). */
function cosColor(c: number): string {
  const t = Math.max(-1, Math.min(1, Number.isFinite(c) ? c : 0));
  const mix = (a: number, b: number) => Math.round(a + (b - a) * Math.abs(t));
  return t >= 0 ? `rgb(255,${mix(255, 60)},${mix(255, 60)})` : `rgb(${mix(255, 60)},${mix(255, 90)},255)`;
}

/** The n × n matrix cos(reconstruction i, original j) as a coloured table, with the identification summary. */
export function crossRowTable(cri: CrossRowIdentity, labels?: readonly string[]): string {
  const n = cri.cosines.length;
  const head = ['reconstruction \\ original', ...Array.from({ length: n }, (_, j) => String(j + 1))];
  const rows = cri.cosines.map((row, i) => [
    escapeHtml(`${i + 1}${labels?.[i] ? ` ${clip(labels[i], 40)}` : ''}`),
    ...row.map((c, j) => {
      const best = row.every((o, k) => k === j || o <= c);
      return `<span title="cos(rec ${i + 1}, orig ${j + 1})" style="display:block;background:${cosColor(c)};${i === j ? 'outline:2px solid #000;' : ''}${best ? 'font-weight:bold;' : ''}padding:0 2px">${num(c, 3)}</span>`;
    }),
  ]);
  const caption = `top-1 ${num(cri.top1, 3)} (chance ${num(cri.chance, 3)}), diagonal − off-diagonal margin ${num(cri.margin)}, mean rank ${num(cri.meanRank, 2)} of ${n}; bold: each row's best, outlined: the own original`;
  return table(head, rows, [0], caption);
}

interface Series {
  name: string;
  values: readonly number[];
  color: string;
}

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd'];

/** A grouped bar chart (one group per item, one bar per series) with a zero line, ticks and a legend. */
export function barChart(opts: { title: string; series: readonly Series[]; labels?: readonly string[]; yLabel?: string }): string {
  const n = Math.max(0, ...opts.series.map((s) => s.values.length));
  const all = opts.series.flatMap((s) => s.values.filter(Number.isFinite));
  // ticks at multiples of a round step, so that 0 is always one of them
  const span = Math.max(1e-9, Math.max(0, ...all) - Math.min(0, ...all));
  const step = [0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 20, 50, 100].find((st) => span / st <= 6) ?? 10 ** Math.ceil(Math.log10(span / 5));
  const lo = Math.floor(Math.min(0, ...all) / step - 1e-9) * step;
  let hi = Math.ceil(Math.max(0, ...all) / step + 1e-9) * step;
  if (hi - lo < step) hi = lo + step;
  const digits = step >= 1 ? 0 : Math.abs(step * 10 - Math.round(step * 10)) < 1e-9 ? 1 : 2; // 0.1, 0.2, 0.5 → 1; 0.25, 0.05 → 2
  const barW = 12;
  const groupW = opts.series.length * barW + 14;
  const left = 52, right = 16, top = 44, bottom = 34;
  const plotW = Math.max(240, n * groupW, opts.title.length * 8 - left - right);
  const plotH = 180;
  const W = left + plotW + right, H = top + plotH + bottom;
  const y = (v: number) => top + ((hi - v) / (hi - lo)) * plotH;
  const parts: string[] = [];
  parts.push(`<text x="${left}" y="16" font-size="13" font-weight="bold">${escapeHtml(opts.title)}</text>`);
  for (let k = 0; lo + k * step <= hi + step / 2; k++) {
    const v = lo + k * step;
    parts.push(`<line x1="${left}" x2="${left + plotW}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e3e3e3"/>`);
    parts.push(`<text x="${left - 6}" y="${(y(v) + 4).toFixed(1)}" font-size="10" text-anchor="end">${(Math.abs(v) < step / 2 ? 0 : v).toFixed(digits)}</text>`);
  }
  parts.push(`<line x1="${left}" x2="${left + plotW}" y1="${y(0).toFixed(1)}" y2="${y(0).toFixed(1)}" stroke="#333"/>`);
  if (opts.yLabel)
    parts.push(`<text transform="translate(12 ${top + plotH / 2}) rotate(-90)" font-size="11" text-anchor="middle">${escapeHtml(opts.yLabel)}</text>`);
  const gap = n > 0 ? (plotW - n * (groupW - 14)) / n : 0;
  for (let i = 0; i < n; i++) {
    const gx = left + i * ((groupW - 14) + gap) + gap / 2;
    opts.series.forEach((s, j) => {
      const v = s.values[i];
      if (v === undefined || !Number.isFinite(v)) return;
      const y0 = y(0), y1 = y(v);
      const tip = `${opts.labels?.[i] ? `${clip(opts.labels[i], 80)}: ` : `#${i + 1} `}${s.name} = ${num(v)}`;
      parts.push(`<rect x="${(gx + j * barW).toFixed(1)}" y="${Math.min(y0, y1).toFixed(1)}" width="${barW - 2}" height="${Math.max(0.5, Math.abs(y1 - y0)).toFixed(1)}" fill="${s.color}"><title>${escapeHtml(tip)}</title></rect>`);
    });
    parts.push(`<text x="${(gx + (opts.series.length * barW) / 2).toFixed(1)}" y="${top + plotH + 14}" font-size="10" text-anchor="middle">${i + 1}</text>`);
  }
  let lx = left;
  for (const s of opts.series) {
    parts.push(`<rect x="${lx}" y="26" width="10" height="10" fill="${s.color}"/><text x="${lx + 14}" y="35" font-size="11">${escapeHtml(s.name)}</text>`);
    lx += 24 + s.name.length * 6.5;
  }
  parts.push(`<text x="${left + plotW / 2}" y="${H - 4}" font-size="10" text-anchor="middle">item</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui,sans-serif">\n${parts.join('\n')}\n</svg>`;
}

/** Cosine (and FVE when present) per item. */
export function roundTripChart(results: readonly RoundTripRow[], explanations?: readonly string[]): string {
  const series: Series[] = [{ name: 'cosine', values: results.map((r) => r.cosine), color: PALETTE[0] }];
  if (results.some((r) => r.fve !== undefined)) series.push({ name: 'FVE', values: results.map((r) => r.fve ?? NaN), color: PALETTE[2] });
  return barChart({ title: 'Round trip: reconstruction vs original', series, labels: explanations, yLabel: 'cosine' });
}

/** The explanation's cosine beside the empty and gibberish baselines, per item. */
export function controlsChart(summary: ControlsSummary, explanations?: readonly string[]): string {
  return barChart({
    title: 'Controls: explanation vs empty and gibberish baselines',
    series: [
      { name: 'explanation', values: summary.items.map((r) => r.cosine), color: PALETTE[0] },
      { name: 'empty', values: summary.items.map((r) => r.emptyCosine), color: '#999999' },
      { name: 'gibberish', values: summary.items.map((r) => r.gibberishCosine), color: PALETTE[1] },
    ],
    labels: explanations,
    yLabel: 'cosine to the original',
  });
}

/** The cross-row cosine matrix as an SVG heatmap (rows: reconstructions, columns: originals). */
export function crossRowHeatmap(cri: CrossRowIdentity, labels?: readonly string[]): string {
  const n = cri.cosines.length;
  const cell = Math.max(10, Math.min(32, Math.floor(480 / Math.max(1, n))));
  const left = 40, top = 40;
  const title = 'Cross-row identity: cos(reconstruction i, original j)';
  const W = Math.max(left + n * cell + 110, title.length * 8 + 8), H = Math.max(top + n * cell, top + 11 * 12) + 30;
  const parts: string[] = [`<text x="4" y="16" font-size="13" font-weight="bold">${escapeHtml(title)}</text>`];
  cri.cosines.forEach((row, i) => {
    row.forEach((c, j) => {
      const tip = `rec ${i + 1}${labels?.[i] ? ` (${clip(labels[i], 60)})` : ''} vs orig ${j + 1}: ${num(c)}`;
      parts.push(`<rect x="${left + j * cell}" y="${top + i * cell}" width="${cell}" height="${cell}" fill="${cosColor(c)}"${i === j ? ' stroke="#000" stroke-width="2"' : ''}><title>${escapeHtml(tip)}</title></rect>`);
    });
    parts.push(`<text x="${left - 4}" y="${top + i * cell + cell / 2 + 4}" font-size="10" text-anchor="end">${i + 1}</text>`);
  });
  for (let j = 0; j < n; j++) parts.push(`<text x="${left + j * cell + cell / 2}" y="${top - 4}" font-size="10" text-anchor="middle">${j + 1}</text>`);
  const lx = left + n * cell + 16;
  for (let k = 0; k <= 10; k++) {
    const v = 1 - k / 5;
    parts.push(`<rect x="${lx}" y="${top + k * 12}" width="14" height="12" fill="${cosColor(v)}"/>`);
    if (k % 5 === 0) parts.push(`<text x="${lx + 18}" y="${top + k * 12 + 10}" font-size="10">${v.toFixed(0)}</text>`);
  }
  parts.push(`<text x="${left}" y="${H - 8}" font-size="11">top-1 ${num(cri.top1, 3)} (chance ${num(cri.chance, 3)}), margin ${num(cri.margin)}</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui,sans-serif">\n${parts.join('\n')}\n</svg>`;
}

/** A progress bar as HTML (for tslab's `newDisplay().html(...)`, which redraws one output in place). */
export function progressBar(done: number, total: number, label = ''): string {
  const f = total > 0 ? Math.max(0, Math.min(1, done / total)) : 1;
  return `<div style="font:12px system-ui,sans-serif">${escapeHtml(label)} ${done}/${total}` +
    `<div style="width:320px;height:10px;background:#eee;border-radius:3px"><div style="width:${(f * 100).toFixed(1)}%;height:10px;background:#1f77b4;border-radius:3px"></div></div></div>`;
}

/** A standalone HTML page from titled sections (HTML or SVG strings). */
export function htmlReport(title: string, sections: readonly { title: string; html: string }[], note?: string): string {
  const body = sections.map((s) => `<section style="margin:18px 0"><h2 style="font-size:16px">${escapeHtml(s.title)}</h2>\n${s.html}\n</section>`).join('\n');
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>\n` +
    `<body style="font:14px system-ui,sans-serif;margin:24px;max-width:1100px">\n<h1 style="font-size:20px">${escapeHtml(title)}</h1>\n` +
    `${note ? `<p style="color:#555">${escapeHtml(note)}</p>\n` : ''}${body}\n</body></html>\n`;
}

/** The page `nla-ar round-trip --html` writes: the round trips, and the controls and cross-row identity when given. */
export function roundTripReport(input: {
  explanations: readonly string[];
  results: readonly RoundTripRow[];
  controls?: ControlsSummary;
  crossRow?: CrossRowIdentity;
  note?: string;
}): string {
  const sections = [
    { title: 'Round trips', html: `${roundTripTable(input.results, input.explanations)}\n${roundTripChart(input.results, input.explanations)}` },
  ];
  if (input.controls)
    sections.push({ title: 'Controls (empty and gibberish explanations)', html: `${controlsTable(input.controls, input.explanations)}\n${controlsChart(input.controls, input.explanations)}` });
  if (input.crossRow)
    sections.push({ title: 'Cross-row identity', html: `${crossRowTable(input.crossRow, input.explanations)}\n${crossRowHeatmap(input.crossRow, input.explanations)}` });
  return htmlReport('nla-ar round trip', sections, input.note);
}
