// The transport layer: ways to carry APDUs to a card (see docs/pcsc.md).
export type { CardPort } from './card-port.js';
export { TransportError, type TransportErrorCode, MAX_APDU } from './errors.js';
export { PcscFrontEnd, contactlessAtr, pseudoApdu, DESFIRE_HISTORICAL_BYTES, type FrontEndOptions } from './pcsc-frontend.js';
export { InProcessTransport, type InProcessOptions, type LatencyModel } from './in-process.js';
export { PcscContext, PcscTransport, pcscError, type ReaderState, type ConnectOptions } from './pcsc.js';
export { VpcdBridge, parseHostPort, type VpcdBridgeOptions, type BridgeEvent, type BridgeStats } from './vpcd-bridge.js';
export { VPCD_DEFAULT_PORT, VpcdControl, FrameDecoder, encodeFrame, classify, type VpcdMessage } from './vpcd-protocol.js';
export { CardServer, lockImage, openOrCreateImage, type CardServerOptions, type CardServerEvent } from './card-server.js';
export { loadQuickAck, quickAckUnavailableReason, type QuickAck } from './quickack.js';
