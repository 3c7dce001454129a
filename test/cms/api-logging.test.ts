// The redaction layer: known key bytes pushed through every code path that logs — request URLs,
// query strings, headers, bodies that fail validation, handler logs with objects, Buffers and
// messages, thrown errors (5xx with stack) and domain errors (4xx) — are nowhere in the output.
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, maskSecrets } from '../../src/cms/api/logging.js';
import { type Harness, startHarness } from './api-harness.js';

const KEY16 = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
const KEY24 = Buffer.from('0f1e2d3c4b5a69788796a5b4c3d2e1f00123456789abcdef', 'hex');
const KEY32 = Buffer.from('c0ffee00deadbeef0badf00d12345678fedcba9876543210a5a5a5a55a5a5a5a', 'hex');
const KEYS = [KEY16, KEY24, KEY32];
/** Every textual form we look for in the output. */
const FORMS = KEYS.flatMap((k) => [k.toString('hex'), k.toString('hex').toUpperCase(), [...k].map((b) => b.toString(16).padStart(2, '0')).join(':')]);

let h: Harness;
beforeAll(async () => {
  h = await startHarness({
    modules: [
      {
        name: 'leaky test routes',
        register(app) {
          app.get('/leak/log', { config: { auth: { public: true } } }, async (req) => {
            for (const k of KEYS) {
              req.log.info({ key: k, material: k.toString('hex'), nested: { deep: [k.toString('hex').toUpperCase(), new Uint8Array(k)] } }, `handling ${k.toString('hex')}`);
              req.log.warn(`colon form ${[...k].map((b) => b.toString(16).padStart(2, '0')).join(':')}`);
            }
            return { ok: true };
          });
          app.get('/leak/throw', { config: { auth: { public: true } } }, async () => {
            throw new Error(`failed with key ${KEY32.toString('hex')}`);
          });
          app.get('/leak/domain', { config: { auth: { public: true } } }, async () => {
            throw Object.assign(new Error(`bad key ${KEY16.toString('hex')}`), { code: 'ERR_TEST_BAD_INPUT', details: { key: KEY24.toString('hex') } });
          });
        },
      },
    ],
  });
}, 60_000);
afterAll(async () => h?.close());

describe('logs without secrets', () => {
  it('no key bytes in any log line or error response, whichever path logs them', async () => {
    const responses: string[] = [];
    const hex = KEY16.toString('hex');
    responses.push((await h.call('GET', '/v1/leak/log')).text);
    responses.push((await h.call('GET', '/v1/leak/throw')).text);
    responses.push((await h.call('GET', '/v1/leak/domain')).text);
    responses.push((await h.call('GET', `/nope/${hex}?k=${KEY32.toString('hex')}`)).text);
    responses.push((await h.call('GET', `/v1/tokens?key=${KEY24.toString('hex')}`, { headers: { 'x-request-id': hex } })).text);
    responses.push((await h.call('POST', '/v1/tokens', { token: h.admin, body: { label: KEY32.toString('hex'), roles: [KEY16.toString('hex')], tenants: ['a'] } })).text);
    responses.push((await h.call('POST', '/v1/tokens', { token: h.admin, raw: `{"label": "${KEY24.toString('hex')}` })).text);
    responses.push((await h.call('GET', '/v1/tokens', { headers: { authorization: `Bearer ${hex}` } })).text);
    // an operator token is never logged either
    responses.push((await h.call('GET', '/v1/tokens/self', { token: h.admin })).text);

    const out = h.logLines.join('\n');
    expect(h.logLines.length).toBeGreaterThan(20);
    expect(out).toContain('[REDACTED]');
    expect(out).toContain('/leak/log');
    expect(out).toContain('request failed');
    for (const f of FORMS) {
      expect(out.toLowerCase(), `log contains ${f}`).not.toContain(f.toLowerCase());
      for (const r of responses) expect(r.toLowerCase(), `response contains ${f}`).not.toContain(f.toLowerCase());
    }
    expect(out).not.toContain(h.admin);
    expect(out).not.toContain(h.admin.slice(5));
    // the 500 hides internals, the domain error keeps its code
    expect(JSON.parse(responses[1]!).error.code).toBe('ERR_INTERNAL');
    expect(JSON.parse(responses[2]!).error.code).toBe('ERR_TEST_BAD_INPUT');
  });

  it('maskSecrets: 16/24/32-byte hex masked; other lengths and ids kept', () => {
    expect(maskSecrets(`a ${KEY16.toString('hex')} b`)).toBe('a [REDACTED] b');
    expect(maskSecrets('0x' + KEY32.toString('hex'))).toBe('[REDACTED]');
    expect(maskSecrets('deadbeef')).toBe('deadbeef');
    expect(maskSecrets('123e4567-e89b-12d3-a456-426614174000')).toBe('123e4567-e89b-12d3-a456-426614174000');
    expect(maskSecrets('A1C001')).toBe('A1C001');
  });

  it('the logger alone masks messages, objects, Buffers and errors', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'trace', destination: new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }) });
    log.info({ k: KEY16 }, 'buffer');
    log.error({ err: new Error(KEY24.toString('hex')) }, 'error');
    log.info(`message ${KEY32.toString('hex')}`);
    log.child({ binding: KEY16.toString('hex') }).info('child');
    const out = lines.join('');
    expect(lines).toHaveLength(4);
    for (const f of FORMS) expect(out.toLowerCase()).not.toContain(f.toLowerCase());
  });
});
