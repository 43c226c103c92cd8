/**
 * Synthetic Gemma 4 models and adapters for the tests, the benchmarks and the demo files (test tooling: not
 * part of the package, which ships only the demo files made with it; see tools/demo.ts).
 */

export * from './gguf-writer';
export * from './ggml-quants';
export * from './gemma4';
export * from './adapter';

