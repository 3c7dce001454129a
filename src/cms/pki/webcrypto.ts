// WebCrypto types from node:crypto (the project compiles without the DOM lib).
import type { webcrypto } from 'node:crypto';

export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;
export type EcKeyGenParams = webcrypto.EcKeyGenParams;
export type EcKeyImportParams = webcrypto.EcKeyImportParams;
export type EcdsaParams = webcrypto.EcdsaParams;
export type EcKeyAlgorithm = webcrypto.EcKeyAlgorithm;
export type KeyUsage = webcrypto.KeyUsage;
