/**
 * The NLA sidecar, `nla_meta.yaml` beside an adapter (nla-protocol.md §1.2, §2.4): the scales, templates and
 * injection-marker ids a checkpoint was trained with. Two layouts are in use and both are read:
 *  - flat (the Solshine Gemma-4 release): `layer`, `d_model`, `injection_scale`, `mse_scale`;
 *  - the reference schema (kitft): `kind`, `role`, `d_model`, `extraction.{injection_scale, mse_scale, layer}`,
 *    `tokens.{injection_char, injection_token_id, injection_left_neighbor_id, injection_right_neighbor_id}`,
 *    `prompt_templates.{av|actor, ar|critic}`.
 * Parsed with the `yaml` library; nothing here evaluates anything (plain YAML 1.2 core schema, no custom tags).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse } from 'yaml';
import { NlaError } from './errors';

export const SIDECAR_FILE = 'nla_meta.yaml';
const MAX_SIDECAR_BYTES = 1 << 20;

/** `sqrt_d_model`: scale to √d_model; a number: scale to that L2 norm; `raw`: inject as given. */
export type InjectionScale = 'sqrt_d_model' | 'raw' | number;

export interface InjectionMarkerIds {
  /** The marker token whose embedding is replaced (㊗ = 249568 in the Gemma-4 vocabulary). */
  token: number;
  /** The ids it must sit between in the tokenized prompt. */
  left: number;
  right: number;
}

export interface NlaSidecar {
  readonly path: string;
  readonly kind?: string;
  readonly role?: string;
  readonly dModel?: number;
  readonly layer?: number;
  readonly injectionScale?: InjectionScale;
  readonly mseScale?: InjectionScale;
  /** The AV prompt (with the marker character, or `<INJECT>` standing for it). */
  readonly avTemplate?: string;
  /** The AR prompt (with `{explanation}`). */
  readonly arTemplate?: string;
  readonly injectionChar?: string;
  readonly marker?: Partial<InjectionMarkerIds>;
}

function fail(file: string, message: string, cause?: unknown): never {
  throw new NlaError('ERR_NLA_ADAPTER_INVALID', `${file}: ${message}`, cause === undefined ? undefined : { cause });
}

function scaleOf(file: string, key: string, v: unknown): InjectionScale | undefined {
  if (v === undefined || v === null) return undefined;
  if (v === 'sqrt_d_model' || v === 'raw') return v;
  if (typeof v === 'number' && Number.isFinite(v) && v > 0) return v;
  fail(file, `${key} must be 'sqrt_d_model', 'raw' or a positive number, got ${JSON.stringify(v)}`);
}

function intOf(file: string, key: string, v: unknown, min = 0): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) fail(file, `${key} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  return v;
}

function strOf(file: string, key: string, v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') fail(file, `${key} must be a string, got ${typeof v}`);
  return v;
}

function objOf(file: string, key: string, v: unknown): Record<string, unknown> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) fail(file, `${key} must be a mapping`);
  return v as Record<string, unknown>;
}

/** Parses sidecar text (ERR_NLA_ADAPTER_INVALID for malformed YAML or fields of the wrong type). */
export function parseSidecar(text: string, file = SIDECAR_FILE): NlaSidecar {
  let doc: unknown;
  try {
    doc = parse(text, { schema: 'core', maxAliasCount: 100, uniqueKeys: true });
  } catch (e) {
    fail(file, `not valid YAML: ${(e as Error).message.split('\n')[0]}`, e);
  }
  if (doc === null || doc === undefined) doc = {};
  const top = objOf(file, 'the document', doc);
  const ex = objOf(file, 'extraction', top.extraction);
  const tokens = objOf(file, 'tokens', top.tokens);
  const templates = objOf(file, 'prompt_templates', top.prompt_templates);
  const marker: Partial<InjectionMarkerIds> = {};
  const tok = intOf(file, 'tokens.injection_token_id', tokens.injection_token_id);
  const left = intOf(file, 'tokens.injection_left_neighbor_id', tokens.injection_left_neighbor_id);
  const right = intOf(file, 'tokens.injection_right_neighbor_id', tokens.injection_right_neighbor_id);
  if (tok !== undefined) marker.token = tok;
  if (left !== undefined) marker.left = left;
  if (right !== undefined) marker.right = right;
  return {
    path: file,
    kind: strOf(file, 'kind', top.kind),
    role: strOf(file, 'role', top.role),
    dModel: intOf(file, 'd_model', top.d_model, 1),
    layer: intOf(file, 'layer', top.layer ?? ex.layer),
    injectionScale: scaleOf(file, 'injection_scale', top.injection_scale ?? ex.injection_scale),
    mseScale: scaleOf(file, 'mse_scale', top.mse_scale ?? ex.mse_scale),
    avTemplate: strOf(file, 'prompt_templates.av', templates.av ?? templates.actor),
    arTemplate: strOf(file, 'prompt_templates.ar', templates.ar ?? templates.critic),
    injectionChar: strOf(file, 'tokens.injection_char', tokens.injection_char),
    marker: Object.keys(marker).length ? marker : undefined,
  };
}

/** Reads `<dir>/nla_meta.yaml` when present (undefined when absent; a non-regular file or one over 1 MiB is refused). */
export function readSidecar(dir: string): NlaSidecar | undefined {
  const file = path.join(dir, SIDECAR_FILE);
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return undefined;
  }
  if (!st.isFile()) fail(file, 'not a regular file');
  if (st.size > MAX_SIDECAR_BYTES) fail(file, `${st.size} bytes is far too large for a sidecar`);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new NlaError('ERR_NLA_IO', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  return parseSidecar(text, file);
}

/** The L2 norm an activation is scaled to before injection (0: injected as given). */
export function injectionNorm(scale: InjectionScale, dModel: number): number {
  if (scale === 'raw') return 0;
  if (scale === 'sqrt_d_model') return Math.sqrt(dModel);
  return scale;
}
