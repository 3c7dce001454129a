// @peculiar/x509 needs a Reflect metadata polyfill (tsyringe) loaded before it, and a WebCrypto
// provider. Every PKI file imports x509 from here so the order is always right.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(crypto);

export { x509 };
