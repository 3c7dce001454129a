// `desfire-cms crypto`, in-process through main(argv, io), against the published vectors.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { CliIO } from '../../src/cli/io.js';
import { main } from '../../src/cli/main.js';

async function run(...argv: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIO = { out: (l) => out.push(l), err: (l) => err.push(l), env: {}, cwd: process.cwd() };
  const code = await main(['crypto', ...argv], io);
  return { code, out, err };
}
const vec = (name: string) =>
  (JSON.parse(readFileSync(new URL(`../vectors/${name}.json`, import.meta.url), 'utf8')) as { cases: Record<string, string>[] }).cases;

describe('desfire-cms crypto', () => {
  it('cmac: RFC 4493 and SP 800-38B TDES vectors', async () => {
    for (const c of vec('cmac_aes').filter((c) => c.cmac)) expect((await run('cmac', '--alg', 'aes', '--key', c.key!, '--data', c.message!)).out).toEqual([c.cmac]);
    for (const c of vec('cmac_tdes').filter((c) => c.cmac)) {
      const alg = c.key!.length === 16 ? 'des' : c.key!.length === 32 ? '2k3des' : '3k3des';
      expect((await run('cmac', '--alg', alg, '--key', c.key!, '--data', c.message!)).out).toEqual([c.cmac]);
    }
    const j = await run('cmac', '--alg=aes', '--key=2B7E151628AED2A6ABF7158809CF4F3C', '--data=', '--json');
    expect(JSON.parse(j.out[0]!)).toEqual({ cmac: 'BB1D6929E95937287FA37D129B756746' });
  });

  it('diversify: AN10922 AES-128, 2K3DES and 3K3DES (raw)', async () => {
    for (const c of vec('an10922_diversification').filter((c) => c.algorithm !== 'aes192')) {
      const r = await run('diversify', '--alg', c.algorithm!, '--key', c.master_key!, '--input', c.div_input!);
      expect(r.code).toBe(0);
      expect(r.out).toEqual([c.diversified_key ?? c.diversified_key_raw]);
    }
  });

  it('ev1-session-key: AES and 2K3DES (parity as computed) vectors', async () => {
    const [aes, des2] = vec('ev1_authentication');
    expect((await run('ev1-session-key', '--alg', 'aes', '--rnd-a', aes!.rndA!, '--rnd-b', aes!.rndB!)).out).toEqual([aes!.session_key]);
    const r = await run('ev1-session-key', '--alg', '2k3des', '--rnd-a', des2!.rndA!, '--rnd-b', des2!.rndB!, '--json');
    const got = Buffer.from(JSON.parse(r.out[0]!).sessionKey, 'hex').map((b) => b & 0xfe);
    expect(Buffer.from(got).toString('hex').toUpperCase()).toBe(des2!.session_key);
  });

  it('ev2-session-keys: ENC key then MAC key (AN12343, AN12196)', async () => {
    for (const c of vec('ev2_authentication')) {
      const r = await run('ev2-session-keys', '--key', c.key!, '--rnd-a', c.rndA!, '--rnd-b', c.rndB!);
      expect(r.out).toEqual([c.ses_auth_enc_key, c.ses_auth_mac_key]);
      const j = await run('ev2-session-keys', '--key', c.key!, '--rnd-a', c.rndA!, '--rnd-b', c.rndB!, '--json');
      expect(JSON.parse(j.out[0]!)).toEqual({ encKey: c.ses_auth_enc_key, macKey: c.ses_auth_mac_key });
    }
  });

  it('crc32 and crc16: the bytes as sent', async () => {
    for (const c of vec('crc')) {
      const r = await run(c.algorithm === 'crc32-desfire' ? 'crc32' : 'crc16', '--data', c.data!);
      expect(r.out).toEqual([c.crc_le_bytes]);
    }
    expect(JSON.parse((await run('crc16', '--data', '04440F32763180', '--json')).out[0]!)).toEqual({ crc16: '2798' });
  });

  it('bad hex, wrong lengths, bad choices and missing arguments: exit 2, one line naming the argument', async () => {
    const cases: [string[], RegExp][] = [
      [['cmac', '--alg', 'aes', '--key', '2B7E15', '--data', '00'], /--key: aes key must be 16 bytes, got 3/],
      [['cmac', '--alg', 'aes', '--key', '2B7E151628AED2A6ABF7158809CF4F3X', '--data', '00'], /--key: not a hex string/],
      [['cmac', '--alg', 'aes', '--key', '2B7E151628AED2A6ABF7158809CF4F3C', '--data', '0'], /--data: not a hex string/],
      [['cmac', '--alg', 'rsa', '--key', '00', '--data', '00'], /--alg: must be one of/],
      [['cmac', '--alg', 'aes', '--data', '00'], /missing --key/],
      [['diversify', '--alg', 'aes128', '--key', '00112233445566778899AABBCCDDEEFF', '--input', '00'.repeat(32)], /--input: diversification input must be at most 31 bytes/],
      [['diversify', '--alg', '3k3des', '--key', '00112233445566778899AABBCCDDEEFF', '--input', '00'], /--key: 3k3des master key must be 24 bytes/],
      [['ev1-session-key', '--alg', 'des', '--rnd-a', '0011223344556677', '--rnd-b', '00'], /--rnd-b: des RndB must be 8 bytes/],
      [['ev2-session-keys', '--key', '00'.repeat(16), '--rnd-a', '00'.repeat(15), '--rnd-b', '00'.repeat(16)], /--rnd-a: RndA must be 16 bytes/],
      [['crc32', '--data', 'zz'], /--data: not a hex string/],
      [['crc32', '--bogus', '00'], /unknown option --bogus/],
      [['frobnicate'], /unknown operation 'frobnicate'/],
    ];
    for (const [argv, re] of cases) {
      const r = await run(...argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.out).toEqual([]);
      expect(r.err.length).toBe(1);
      expect(r.err[0]).toMatch(re);
      expect(r.err[0]).not.toMatch(/2B7E151628AED2A6/); // never echo key material
    }
  });

  it('help', async () => {
    const r = await run('--help');
    expect(r.code).toBe(0);
    expect(r.out.join('\n')).toMatch(/ev2-session-keys/);
  });
});
