// A small local HTTP server implementing the handful of Vault Transit endpoints the backend uses,
// with real AES-256-GCM, key derivation from `context`, versions, min versions and trim. It checks
// request shapes (field names, base64, batch_input) and records every request. It is an
// additional check of the backend; the real one runs when VAULT_ADDR and VAULT_TOKEN are set.
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

interface Key {
  derived: boolean;
  versions: Map<number, { key: Buffer; hmac: Buffer; created: number }>;
  latest: number;
  minDec: number;
  minEnc: number;
  minAvail: number;
}

export interface RecordedRequest {
  method: string;
  path: string;
  body: Record<string, unknown> | undefined;
  token: string | undefined;
}

class Bad extends Error {
  constructor(
    readonly status: number,
    msg: string,
  ) {
    super(msg);
  }
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;
function b64(v: unknown, field: string): Buffer {
  if (typeof v !== 'string' || !B64.test(v) || v.length % 4 !== 0) throw new Bad(400, `${field} must be base64`);
  return Buffer.from(v, 'base64');
}

export class FakeTransit {
  readonly requests: RecordedRequest[] = [];
  readonly keys = new Map<string, Key>();
  readonly tokens = new Set<string>(['root-token']);
  approle = { roleId: 'role-1', secretId: 'secret-1' };
  private server: Server | undefined;
  addr = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      this.handle(req)
        .then(({ status, body }) => {
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(body === undefined ? '' : JSON.stringify(body));
        })
        .catch((e: unknown) => {
          const status = e instanceof Bad ? e.status : 500;
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ errors: [(e as Error).message] }));
        });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.addr = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => this.server?.close(() => r()));
  }

  private async read(req: IncomingMessage): Promise<Record<string, unknown> | undefined> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (!chunks.length) return undefined;
    const v = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Bad(400, 'body must be a JSON object');
    return v as Record<string, unknown>;
  }

  private key(name: string): Key {
    const k = this.keys.get(name);
    if (!k) throw new Bad(400, `encryption key not found`);
    return k;
  }

  private vkey(k: Key, v: number, context: Buffer | undefined): Buffer {
    const ver = k.versions.get(v);
    if (!ver) throw new Bad(400, 'invalid key version');
    if (k.derived) {
      if (!context || !context.length) throw new Bad(400, 'missing \'context\' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key');
      return Buffer.from(hkdfSync('sha256', ver.key, Buffer.alloc(0), context, 32));
    }
    return ver.key;
  }

  private enc(k: Key, plaintext: Buffer, context: Buffer | undefined, aad: Buffer | undefined, version = 0): string {
    const v = version || k.latest;
    if (k.minEnc > 0 && v < k.minEnc) throw new Bad(400, 'requested version for encryption is less than the minimum encryption key version');
    if (v > k.latest || v < k.minAvail) throw new Bad(400, 'invalid key version');
    const nonce = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.vkey(k, v, context), nonce);
    if (aad) c.setAAD(aad);
    const ct = Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
    return `vault:v${v}:${Buffer.concat([nonce, ct]).toString('base64')}`;
  }

  private dec(k: Key, ciphertext: unknown, context: Buffer | undefined, aad: Buffer | undefined): Buffer {
    const m = typeof ciphertext === 'string' ? /^vault:v([0-9]+):(.*)$/.exec(ciphertext) : null;
    if (!m) throw new Bad(400, 'invalid ciphertext: no prefix');
    const v = Number(m[1]);
    if (v < k.minDec || v < k.minAvail) throw new Bad(400, 'ciphertext or signature version is disallowed by policy (too old)');
    if (!B64.test(m[2]!)) throw new Bad(400, 'invalid ciphertext: could not decode');
    const raw = Buffer.from(m[2]!, 'base64');
    if (raw.length < 28) throw new Bad(400, 'invalid ciphertext: too short');
    try {
      const d = createDecipheriv('aes-256-gcm', this.vkey(k, v, context), raw.subarray(0, 12));
      if (aad) d.setAAD(aad);
      d.setAuthTag(raw.subarray(raw.length - 16));
      return Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()]);
    } catch (e) {
      if (e instanceof Bad) throw e;
      throw new Bad(400, 'cipher: message authentication failed');
    }
  }

  private info(name: string, k: Key) {
    const keys: Record<string, number> = {};
    for (const [v, x] of k.versions) keys[String(v)] = x.created;
    return { name, type: 'aes256-gcm96', derived: k.derived, keys, latest_version: k.latest, min_available_version: k.minAvail, min_decryption_version: k.minDec, min_encryption_version: k.minEnc, supports_encryption: true };
  }

  private async handle(req: IncomingMessage): Promise<{ status: number; body?: unknown }> {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    const body = await this.read(req);
    const token = req.headers['x-vault-token'] as string | undefined;
    const method = req.method === 'GET' && url.searchParams.get('list') === 'true' ? 'LIST' : (req.method ?? 'GET');
    this.requests.push({ method, path, body, token });
    if (method === 'POST' && path === '/v1/auth/approle/login') {
      if (body?.role_id !== this.approle.roleId || body?.secret_id !== this.approle.secretId) throw new Bad(400, 'invalid role or secret ID');
      const t = `s.${randomBytes(8).toString('hex')}`;
      this.tokens.add(t);
      return { status: 200, body: { auth: { client_token: t, lease_duration: 3600, renewable: true } } };
    }
    if (!token || !this.tokens.has(token)) throw new Bad(403, 'permission denied');
    const m = /^\/v1\/transit\/(keys|encrypt|decrypt|rewrap|datakey\/wrapped|random|hmac|verify)(?:\/([^/]+))?(?:\/(rotate|config|trim))?$/.exec(path);
    if (!m) throw new Bad(404, `no handler for route "${path}"`);
    const [, op, rawName, sub] = m;
    const name = rawName ? decodeURIComponent(rawName) : undefined;
    const b = body ?? {};
    if (op === 'keys' && !name) {
      if (method !== 'LIST') throw new Bad(405, 'method not allowed');
      if (!this.keys.size) throw new Bad(404, '');
      return { status: 200, body: { data: { keys: [...this.keys.keys()] } } };
    }
    if (op === 'keys') {
      if (method === 'GET') {
        const k = this.keys.get(name!);
        if (!k) throw new Bad(404, '');
        return { status: 200, body: { data: this.info(name!, k) } };
      }
      if (method !== 'POST') throw new Bad(405, 'method not allowed');
      if (!sub) {
        if (this.keys.has(name!)) return { status: 204 };
        if (b.type !== undefined && b.type !== 'aes256-gcm96') throw new Bad(400, 'unsupported key type');
        this.keys.set(name!, { derived: b.derived === true, versions: new Map([[1, { key: randomBytes(32), hmac: randomBytes(32), created: Math.floor(Date.now() / 1000) }]]), latest: 1, minDec: 1, minEnc: 0, minAvail: 0 });
        return { status: 204 };
      }
      const k = this.key(name!);
      if (sub === 'rotate') {
        k.latest++;
        k.versions.set(k.latest, { key: randomBytes(32), hmac: randomBytes(32), created: Math.floor(Date.now() / 1000) });
        return { status: 200, body: { data: this.info(name!, k) } };
      }
      if (sub === 'config') {
        const dec = b.min_decryption_version as number | undefined;
        const enc = b.min_encryption_version as number | undefined;
        const nd = dec ?? k.minDec;
        const ne = enc ?? k.minEnc;
        if (!Number.isInteger(nd) || nd < 1 || nd > k.latest) throw new Bad(400, 'min_decryption_version out of range');
        if (!Number.isInteger(ne) || ne < 0 || ne > k.latest || (ne !== 0 && ne < nd)) throw new Bad(400, 'min encryption version should not be less than min decryption version');
        k.minDec = nd;
        k.minEnc = ne;
        return { status: 204 };
      }
      // trim
      const mav = b.min_available_version;
      if (!Number.isInteger(mav) || (mav as number) > k.minDec || (k.minEnc > 0 && (mav as number) > k.minEnc)) throw new Bad(400, 'cannot be set greater than min_decryption_version / min_encryption_version');
      for (const v of [...k.versions.keys()]) if (v < (mav as number)) k.versions.delete(v);
      k.minAvail = mav as number;
      return { status: 204 };
    }
    if (op === 'random') {
      const n = Number(name ?? 32);
      return { status: 200, body: { data: { random_bytes: randomBytes(n).toString(b.format === 'hex' ? 'hex' : 'base64') } } };
    }
    const k = this.key(name!);
    const ctx = (x: Record<string, unknown>) => (x.context === undefined ? undefined : b64(x.context, 'context'));
    const ad = (x: Record<string, unknown>) => (x.associated_data === undefined ? undefined : b64(x.associated_data, 'associated_data'));
    const batch = (fn: (x: Record<string, unknown>) => Record<string, unknown>) => {
      if (b.batch_input !== undefined) {
        if (!Array.isArray(b.batch_input)) throw new Bad(400, 'batch_input must be an array');
        return {
          status: 200,
          body: {
            data: {
              batch_results: (b.batch_input as Record<string, unknown>[]).map((x) => {
                try {
                  return fn(x);
                } catch (e) {
                  return { error: (e as Error).message };
                }
              }),
            },
          },
        };
      }
      return { status: 200, body: { data: fn(b) } };
    };
    switch (op) {
      case 'encrypt':
        return batch((x) => ({ ciphertext: this.enc(k, b64(x.plaintext, 'plaintext'), ctx(x), ad(x), (x.key_version as number) ?? 0) }));
      case 'decrypt':
        return batch((x) => ({ plaintext: this.dec(k, x.ciphertext, ctx(x), ad(x)).toString('base64') }));
      case 'rewrap':
        if (b.associated_data !== undefined) throw new Bad(400, 'rewrap takes no associated_data');
        return batch((x) => ({ ciphertext: this.enc(k, this.dec(k, x.ciphertext, ctx(x), undefined), ctx(x), undefined, (x.key_version as number) ?? 0) }));
      case 'datakey/wrapped': {
        const bits = (b.bits as number | undefined) ?? 256;
        if (![128, 256, 512].includes(bits)) throw new Bad(400, 'invalid bits');
        return { status: 200, body: { data: { ciphertext: this.enc(k, randomBytes(bits / 8), ctx(b), undefined) } } };
      }
      case 'hmac': {
        const v = k.latest;
        return { status: 200, body: { data: { hmac: `vault:v${v}:${createHmac('sha256', k.versions.get(v)!.hmac).update(b64(b.input, 'input')).digest('base64')}` } } };
      }
      case 'verify': {
        const mm = typeof b.hmac === 'string' ? /^vault:v([0-9]+):(.*)$/.exec(b.hmac) : null;
        if (!mm) throw new Bad(400, 'invalid hmac');
        const ver = k.versions.get(Number(mm[1]));
        if (!ver) throw new Bad(400, 'invalid key version');
        const want = createHmac('sha256', ver.hmac).update(b64(b.input, 'input')).digest();
        const got = Buffer.from(mm[2]!, 'base64');
        return { status: 200, body: { data: { valid: got.length === want.length && timingSafeEqual(got, want) } } };
      }
    }
    throw new Bad(404, 'unsupported');
  }
}
