// Operation tokens with the CMS session store (src/cms/session) as the nonce store: a token used
// at one CMS process is refused at another sharing the store. Memory and a real Redis.
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryCaKeyStore, OperationTokens, aesGcmProtector } from '../../src/cms/pki/index.js';
import { openSessionStore, type SessionStore } from '../../src/cms/session/index.js';
import { REDIS_URL, requireComponent, tcpReachable } from '../helpers/system.js';

const u = new URL(REDIS_URL);
const redisOk = requireComponent('Redis', await tcpReachable(u.hostname, Number(u.port || 6379)));

const keys = new MemoryCaKeyStore();
const protector = aesGcmProtector(randomBytes(32));

describe.each([
  ['memory', false],
  ['redis', true],
] as const)('operation tokens over the %s session store', (kind, needsRedis) => {
  const opened: SessionStore[] = [];
  afterAll(async () => {
    for (const s of opened) await s.close();
  });

  it.skipIf(needsRedis && !redisOk)('a token is accepted once across two CMS instances', async () => {
    const prefix = `test-f-${randomBytes(4).toString('hex')}:`;
    const open = async () => {
      const s = kind === 'memory' ? await openSessionStore({ kind: 'memory' }) : await openSessionStore({ kind: 'redis', url: REDIS_URL, prefix });
      opened.push(s);
      return s;
    };
    const a = await open();
    const b = kind === 'memory' ? a : await open(); // memory is one process by definition
    const cms1 = await OperationTokens.openOrCreate(keys, protector);
    const cms2 = await OperationTokens.openOrCreate(keys, protector);
    const t = await cms1.issue({ readerId: 'station-1', jobId: 'job-1' });
    const results = await Promise.allSettled([
      cms1.verify(t.token, { readerId: 'station-1', jobId: 'job-1' }, a),
      cms2.verify(t.token, { readerId: 'station-1', jobId: 'job-1' }, b),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.find((r) => r.status === 'rejected')).toMatchObject({ reason: { code: 'ERR_TOKEN_REPLAYED' } });
    await expect(cms2.verify(t.token, { readerId: 'station-1' }, b)).rejects.toMatchObject({ code: 'ERR_TOKEN_REPLAYED' });
  });
});
