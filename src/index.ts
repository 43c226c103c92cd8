/**
 * nla-ar: the Activation Reconstructor of the Gemma-4-E2B Natural Language Autoencoder,
 * run by a native C++ engine from a GGUF base model and the published PEFT adapter folder.
 */
export * from './api';

/*
 * The default export is an object holding every named export, so `import nla from 'nla-ar'; nla.Reconstructor`
 * works in every import style: CommonJS (`require('nla-ar').default`), TypeScript's `__importDefault` with or
 * without esModuleInterop (tslab compiles cells that way), and ESM through lib/index.mjs. Without it,
 * `import nla from 'nla-ar'` type-checked under esModuleInterop and was `undefined` at run time. It is the
 * namespace of ./api rather than of this module because TypeScript rejects a module whose default is its own
 * namespace (TS2303). New public names go in ./api.
 */
import * as api from './api';
export default api;
/** The type of the default export (lib/index.d.mts names it, so ESM types agree under every moduleResolution). */
export type NlaArModule = typeof api;
