/**
 * Typed errors. Every failure nla-ar reports is an `NlaError` whose `code` is one of
 * `NlaErrorCode`; the codes are stable and documented in README.md ("Error codes").
 * The native engine throws the same codes (native/common/error.h), which the binding maps here.
 */
export const NLA_ERROR_CODES = [
  'ERR_NLA_INVALID_ARG', // an option or argument is missing, misspelled, of the wrong type or out of range
  'ERR_NLA_IO', // a file cannot be opened, read or mapped
  'ERR_NLA_GGUF_MALFORMED', // the GGUF is truncated or internally inconsistent
  'ERR_NLA_UNSUPPORTED_TENSOR_TYPE', // a tensor uses a format the engine does not implement
  'ERR_NLA_UNSUPPORTED_ARCH', // the GGUF is not a gemma4 model
  'ERR_NLA_MODEL_INVALID', // a required tensor or hyperparameter is missing or has the wrong shape
  'ERR_NLA_ADAPTER_INVALID', // adapter_config.json / adapter_model.safetensors malformed or unsupported
  'ERR_NLA_ADAPTER_MISMATCH', // the adapter does not fit the model (shapes, layers, modules)
  'ERR_NLA_ADAPTER_NOT_LOADED', // an adapter that is not (or no longer) loaded on the model
  'ERR_NLA_ADAPTER_IN_USE', // unloading an adapter that a session's sequence is using
  'ERR_NLA_SEQUENCE_FINISHED', // a step on a sequence that was finished (removed)
  'ERR_NLA_INJECTION', // the AV prompt has no unique injection site (marker missing, repeated, or its neighbours differ)
  'ERR_NLA_HEAD_INVALID', // linear head file malformed, wrong shape or dtype
  'ERR_NLA_UNSAFE_PICKLE', // a .pt pickle asked for something other than a tensor state_dict
  'ERR_NLA_CONTEXT_OVERFLOW', // the prompt is longer than the model's context
  'ERR_NLA_TOKENIZER', // the vocabulary cannot be used
  'ERR_NLA_ABORTED', // the caller's AbortSignal fired
  'ERR_NLA_CLOSED', // the Reconstructor was closed
  'ERR_NLA_NO_CUDA', // device 'cuda' was requested but no usable GPU/driver/binary exists
  'ERR_NLA_OUT_OF_MEMORY', // an allocation (host or device) failed
  'ERR_NLA_NATIVE_LOAD', // the native binary could not be loaded
  'ERR_NLA_HUB', // a Hugging Face Hub download failed (not found, unreachable, offline and not cached, corrupt)
  'ERR_NLA_HUB_AUTH', // the Hub refused the request (401/403): private or gated repository, missing or bad HF_TOKEN
  'ERR_NLA_INTERNAL', // a bug: please report it
] as const;

export type NlaErrorCode = (typeof NLA_ERROR_CODES)[number];

export class NlaError extends Error {
  readonly code: NlaErrorCode;
  constructor(code: NlaErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NlaError';
    this.code = code;
  }
}

export function isNlaErrorCode(x: unknown): x is NlaErrorCode {
  return typeof x === 'string' && (NLA_ERROR_CODES as readonly string[]).includes(x);
}
