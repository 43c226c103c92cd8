/**
 * nla-ar: the Activation Reconstructor of the Gemma-4-E2B Natural Language Autoencoder,
 * run by a native C++ engine from a GGUF base model and the published PEFT adapter folder.
 */
export { Reconstructor } from './reconstructor';
export { Verbalizer, verbalizationStats, extractExplanation, DEFAULT_AV_TEMPLATE, RELEASED_MARKER, VerbalizerLoadOptionsSchema, VerbalizeOptionsSchema } from './verbalizer';
export type { VerbalizerLoadOptions, VerbalizeOptions, Verbalization, VerbalizerInfo } from './verbalizer';
export { Autoencoder, AutoencoderLoadOptionsSchema } from './autoencoder';
export type { AutoencoderLoadOptions, AutoencoderRoundTrip, RoundTripItem } from './autoencoder';
export { parseSidecar, readSidecar, SIDECAR_FILE } from './sidecar';
export type { NlaSidecar, InjectionScale, InjectionMarkerIds } from './sidecar';
export type { ReconstructorInfo, RoundTripInput, RoundTripResult } from './reconstructor';
export { Tokenizer } from './tokenizer';
export { LinearHead } from './head';
export { NlaError, NLA_ERROR_CODES } from './errors';
export type { NlaErrorCode } from './errors';
export { cosine, directionMse, fve, meanActivation, baselineMse } from './metrics';
export {
  DEFAULT_TEMPLATE,
  DEFAULT_AR_LAYER,
  DEFAULT_ACTIVATION_LAYER,
  LoadOptionsSchema,
} from './options';
export type { LoadOptions, CallOptions, HiddenStateOptions, ActivationOptions, RoundTripOptions, TokenizeOptions } from './options';
export { loadLinearHead } from './head-file';
export { crossRowIdentity, gibberishLike, summarizeControls } from './controls';
export type { CrossRowIdentity, ControlResult, ControlsSummary } from './controls';
