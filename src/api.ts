/** The public API of nla-ar (re-exported by index.ts, which adds the default export). */
export { Reconstructor } from './reconstructor';
export { Verbalizer, verbalizationStats, extractExplanation, DEFAULT_AV_TEMPLATE, RELEASED_MARKER, VerbalizerLoadOptionsSchema, VerbalizeOptionsSchema } from './verbalizer';
export type { VerbalizerLoadOptions, VerbalizeOptions, Verbalization, VerbalizerInfo } from './verbalizer';
export { Autoencoder, AutoencoderLoadOptionsSchema } from './autoencoder';
export type { AutoencoderLoadOptions, AutoencoderRoundTrip, RoundTripItem } from './autoencoder';
export { parseSidecar, readSidecar, SIDECAR_FILE } from './sidecar';
export type { NlaSidecar, InjectionScale, InjectionMarkerIds } from './sidecar';
export type { ReconstructorInfo, RoundTripInput, RoundTripResult } from './reconstructor';
export { Tokenizer } from './tokenizer';
export { LinearHead, type HeadExpectation } from './head';
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
export { demoFiles } from './demo';
export type { ShippedDemoFiles } from './demo';
export { ActivationVector, summarizeVector, formatVector } from './vector';
export type { VectorSummary } from './vector';
export {
  roundTripTable,
  roundTripChart,
  controlsTable,
  controlsChart,
  crossRowTable,
  crossRowHeatmap,
  barChart,
  progressBar,
  htmlReport,
  roundTripReport,
  escapeHtml,
} from './report';
export type { RoundTripRow } from './report';
export {
  hubDownload,
  hubSnapshot,
  resolvePretrained,
  resolveModelPath,
  parseHfUri,
  parseHfRepoUri,
  hubCacheDir,
  formatProgress,
  formatBytes,
  PRETRAINED_FILES,
  DEFAULT_HUB_ENDPOINT,
} from './hub';
export type { HubOptions, DownloadProgress, HubFile, HubSnapshot, PretrainedFiles, PretrainedLoadOptions, HfUri } from './hub';
export { nativeReport, probeCuda } from './native';
export type { NativeReport, CudaProbe } from './native';
