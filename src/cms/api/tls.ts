// TLS material for the listener. In embedded mode ("auto") the CMS CA issues the server's own
// certificate at every start (P-256, short-lived, SAN = the listen host + configured names), so the
// one trust anchor a reader or operator needs is the CMS CA certificate.
import { isIP } from 'node:net';
import type { CertificateAuthority } from '../pki/ca.js';
import { x509 } from '../pki/x509.js';

export interface TlsMaterial {
  cert: string;
  key: string;
  /** CA for client (reader) certificates; with it the listener asks for a client certificate. */
  ca?: string;
}

const SERVER_CERT_DAYS = 30;

export async function issueServerCertificate(ca: CertificateAuthority, names: string[], now = new Date()): Promise<TlsMaterial> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256' } as const;
  const keys = (await crypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as { publicKey: Parameters<typeof crypto.subtle.exportKey>[1]; privateKey: Parameters<typeof crypto.subtle.exportKey>[1] };
  const spki = new Uint8Array(await crypto.subtle.exportKey('spki', keys.publicKey));
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  const unique = [...new Set(names.filter((n) => n.length > 0))];
  const san = unique.map((n) => (isIP(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n }));
  const cert = await ca.issue({
    subject: `CN=${unique[0] ?? 'localhost'}, O=desfire-cms`,
    publicKey: new x509.PublicKey(spki),
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + SERVER_CERT_DAYS * 86_400_000),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(san, false),
    ],
  });
  const key = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/.{64}/g, '$&\n').trimEnd()}\n-----END PRIVATE KEY-----\n`;
  pkcs8.fill(0);
  return { cert: cert.toString('pem'), key, ca: ca.certificatePem };
}

/** The names the automatic certificate covers: the listen host (unless a wildcard), localhost, 127.0.0.1, extras. */
export function serverNames(host: string, extra: string[]): string[] {
  const wildcard = host === '0.0.0.0' || host === '::';
  return [...(wildcard ? [] : [host]), 'localhost', '127.0.0.1', '::1', ...extra];
}
