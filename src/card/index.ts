// The virtual DESFire card (see docs/virtual-card.md).
export { VirtualCard, type VirtualCardOptions } from './virtual-card.js';
export { type CardImage, CardImageError, IMAGE_FORMAT, IMAGE_VERSION, decodeImage, encodeImage } from './image.js';
export { saveImageAtomic, saveImageAtomicSync, loadImage, loadImageSync, type ImageFs } from './image-file.js';
export { type LatencyModel, type Bitrate, latencyModel } from './latency.js';
export { originalityPublicKey, originalitySignature, verifyOriginality } from './originality.js';
export { TOTAL_USER_MEMORY } from './memory.js';
export type { Profile } from './model.js';
