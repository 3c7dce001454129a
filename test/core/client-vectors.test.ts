// The client replayed against published traces (test/vectors, copied from the shared vector set
// with their sources): a scripted transport checks every C-APDU byte for byte and answers
// with the card's recorded response.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { fromHex, toHex } from '../../src/core/crypto/bytes.js';
import { FrameError, IntegrityError } from '../../src/core/errors.js';
import { Ev1HostSession } from '../../src/core/sm/ev1.js';
import { Ev2HostSession } from '../../src/core/sm/ev2.js';
import type { Transport } from '../../src/core/transport.js';
import { DesfireClient } from '../../src/core/client/index.js';
import { CardStatusError, responseApdus } from '../../src/core/protocol/index.js';

type Json = Record<string, string | number | boolean | undefined>;

function vectors(name: string): Json[] {
  return (JSON.parse(readFileSync(new URL(`../vectors/${name}.json`, import.meta.url), 'utf8')) as { cases: Json[] }).cases;
}

function byName(name: string, file: string): Json {
  const c = vectors(file).find((v) => String(v.name).startsWith(name));
  if (!c) throw new Error(`vector ${name} missing`);
  return c;
}

const h = (v: unknown): string => String(v);

/** A transport that expects exactly these C-APDUs, in order, and answers each with its R-APDU. */
class Script implements Transport {
  private i = 0;
  constructor(private readonly steps: [string, string][]) {}
  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    const step = this.steps[this.i++];
    if (!step) throw new Error(`unexpected APDU ${toHex(apdu)}`);
    expect(toHex(apdu)).toBe(step[0].toUpperCase());
    return fromHex(step[1]);
  }
  done(): void {
    expect(this.i).toBe(this.steps.length);
  }
}

const fixed = (hex: string) => (n: number): Uint8Array => {
  const b = fromHex(hex);
  expect(n).toBe(b.length);
  return b;
};

describe('client: EV2 authentication replay', () => {
  for (const c of vectors('ev2_authentication')) {
    it(String(c.name), async () => {
      const script = new Script([
        ['9071000002' + h(c.key_no) + '0000', h(c.ek_rndB) + '91AF'],
        ['90AF000020' + h(c.pcd_part2) + '00', h(c.card_part2) + '9100'],
      ]);
      const client = new DesfireClient(script, { random: fixed(h(c.rndA)) });
      const s = await client.authenticate(Number.parseInt(h(c.key_no), 16), fromHex(h(c.key)), { method: 'ev2' });
      script.done();
      expect(s.kind).toBe('ev2');
      expect(toHex(s.ti!)).toBe(h(c.ti));
      expect(s.cmdCtr).toBe(0);
      expect(client.session).toBe(s);
    });
  }

  it('a wrong card answer fails authentication and leaves no session', async () => {
    const c = vectors('ev2_authentication')[0]!;
    const bad = fromHex(h(c.card_part2));
    bad[5]! ^= 1;
    const script = new Script([
      ['9071000002000000', h(c.ek_rndB) + '91AF'],
      ['90AF000020' + h(c.pcd_part2) + '00', toHex(bad) + '9100'],
    ]);
    const client = new DesfireClient(script, { random: fixed(h(c.rndA)) });
    await expect(client.authenticate(0, fromHex(h(c.key)), { method: 'ev2' })).rejects.toThrow();
    expect(client.session).toBeUndefined();
  });

  it('a card refusal (AE) surfaces as CardStatusError', async () => {
    const script = new Script([['9071000002000000', '91AE']]);
    const client = new DesfireClient(script, { random: fixed('00'.repeat(16)) });
    await expect(client.authenticate(0, new Uint8Array(16), { method: 'ev2' })).rejects.toMatchObject({ code: 'ERR_CARD_AUTHENTICATION_ERROR', status: 0xae });
  });
});

describe('client: EV1 authentication and ChangeKey replay', () => {
  it('AES auth then same-key ChangeKey with version 0x10 (Elmue traces)', async () => {
    const a = byName('AES (0xAA)', 'ev1_authentication');
    const k = byName('ChangeKey 0x00 same key, AES', 'ev1_changekey');
    expect(h(k.session_key)).toBe(h(a.session_key));
    const script = new Script([
      ['90AA0000010000', h(a.ek_rndB) + '91AF'],
      ['90AF000020' + h(a.pcd_part2) + '00', h(a.ek_rndA_rot) + '9100'],
      ['90C4000021' + '00' + h(k.cryptogram_enc) + '00', '9100'],
    ]);
    const client = new DesfireClient(script, { random: fixed(h(a.rndA)) });
    const s = await client.authenticate(0, fromHex(h(a.key)), { method: 'aes' });
    expect(s.kind).toBe('ev1');
    await client.changeKey(0, fromHex(h(k.new_key)), { keyType: 'aes', keyVersion: 0x10, picc: false });
    script.done();
    expect(client.session).toBeUndefined();
  });

  it('ISO 2K3DES authentication', async () => {
    const a = byName('ISO (0x1A)', 'ev1_authentication');
    const script = new Script([
      ['901A0000010000', h(a.ek_rndB) + '91AF'],
      ['90AF000010' + h(a.pcd_part2) + '00', h(a.ek_rndA_rot) + '9100'],
    ]);
    const client = new DesfireClient(script, { random: fixed(h(a.rndA)) });
    const s = await client.authenticate(0, fromHex(h(a.key)), { method: 'iso', keyType: '2k3des' });
    script.done();
    expect(s.kind).toBe('ev1');
  });

  it('PICC master key DES -> AES through the key number flag (revk trace)', async () => {
    const k = byName('ChangeKey PICC master key DES -> AES', 'ev1_changekey');
    const script = new Script([['90C4000019' + '80' + h(k.cryptogram_enc) + '00', '9100']]);
    const client = new DesfireClient(script);
    client.adoptSession(new Ev1HostSession({ keyNo: 0, keyType: 'des', sessionKey: fromHex(h(k.session_key)) }));
    await client.changeKey(0, fromHex(h(k.new_key)), { keyType: 'aes', keyVersion: 1 });
    script.done();
    expect(client.session).toBeUndefined();
  });
});

function ev2Session(c: Json): Ev2HostSession {
  return new Ev2HostSession({
    keyNo: 0, ti: fromHex(h(c.ti)), cmdCtr: Number(c.cmd_ctr),
    encKey: fromHex(h(c.ses_enc_key ?? '00'.repeat(16))), macKey: fromHex(h(c.ses_mac_key)),
  });
}

describe('client: EV2 secure messaging replay (AN12343, AN12196)', () => {
  it('T23 WriteData in MAC mode', async () => {
    const c = byName('AN12343 T23', 'ev2_secure_messaging');
    const script = new Script([[h(c.c_apdu), h(c.response)]]);
    const client = new DesfireClient(script, { ev2DataCommands: true });
    client.adoptSession(ev2Session(c));
    await client.writeData(0, 0, fromHex(h(c.cmd_data)), { comm: 'mac' });
    script.done();
    expect(client.session?.cmdCtr).toBe(1);
  });

  it('T25 WriteData in full mode', async () => {
    const c = byName('AN12343 T25', 'ev2_secure_messaging');
    const script = new Script([[h(c.c_apdu), h(c.response)]]);
    const client = new DesfireClient(script, { ev2DataCommands: true });
    client.adoptSession(ev2Session(c));
    await client.writeData(0, 0, fromHex(h(c.cmd_data_plain)), { comm: 'full' });
    script.done();
  });

  it('T26 ReadData in full mode, response split into 59-byte frames as a card sends it', async () => {
    const c = byName('AN12343 T26', 'ev2_secure_messaging');
    const [f1, f2] = responseApdus(0x00, fromHex(h(c.resp_data_enc) + h(c.resp_mact))).map((r) => toHex(r));
    const script = new Script([[h(c.c_apdu), f1!], ['90AF000000', f2!]]);
    const client = new DesfireClient(script);
    client.adoptSession(ev2Session(c));
    const data = await client.readData(0, 0, 0x30, { comm: 'full', ev2Command: true });
    script.done();
    expect(toHex(data)).toBe(h(c.resp_data_plain_padded).slice(0, 96));
    expect(client.session?.cmdCtr).toBe(2);
  });

  it('T26 with one bit flipped in the response MAC: IntegrityError, no data, session ended', async () => {
    const c = byName('AN12343 T26', 'ev2_secure_messaging');
    const body = fromHex(h(c.resp_data_enc) + h(c.resp_mact));
    body[body.length - 1]! ^= 0x01;
    const script = new Script(responseApdus(0x00, body).map((r, i) => [i === 0 ? h(c.c_apdu) : '90AF000000', toHex(r)] as [string, string]));
    const client = new DesfireClient(script, { ev2DataCommands: true });
    client.adoptSession(ev2Session(c));
    await expect(client.readData(0, 0, 0x30, { comm: 'full' })).rejects.toThrow(IntegrityError);
    expect(client.session).toBeUndefined();
  });

  it('AN12196 GetFileSettings in MAC mode', async () => {
    const c = byName('AN12196 5.3', 'ev2_secure_messaging');
    const resp = h(c.resp_data) + h(c.resp_mact) + '9100';
    let script = new Script([[h(c.c_apdu), resp]]);
    let client = new DesfireClient(script);
    client.adoptSession(ev2Session(c));
    const raw = await client.command(0xf5, { header: fromHex('02'), modes: { command: 'mac', response: 'mac' } });
    script.done();
    expect(toHex(raw)).toBe(h(c.resp_data));
    // The same answer through getFileSettings: an NTAG 424 file with SDM (option 0x40) is not a
    // DESFire file setting this codec accepts: a typed error, never a half-decoded value.
    script = new Script([[h(c.c_apdu), resp]]);
    client = new DesfireClient(script);
    client.adoptSession(ev2Session(c));
    await expect(client.getFileSettings(2)).rejects.toThrow(FrameError);
  });

  it('an error status ends the session and surfaces as CardStatusError', async () => {
    const c = byName('AN12196 5.3', 'ev2_secure_messaging');
    const script = new Script([[h(c.c_apdu), '919D']]);
    const client = new DesfireClient(script);
    client.adoptSession(ev2Session(c));
    const e = await client.getFileSettings(2).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CardStatusError);
    expect(e).toMatchObject({ code: 'ERR_CARD_PERMISSION_DENIED', status: 0x9d, statusName: 'PERMISSION_DENIED', ins: 0xf5 });
    expect(client.session).toBeUndefined();
  });
});

describe('client: EV2 ChangeKey replay (AN12343 T40)', () => {
  for (const c of vectors('ev2_changekey')) {
    it(String(c.name), async () => {
      const same = h(c.key_no) === '00';
      const script = new Script([[h(c.c_apdu), h(c.response ?? (same ? '9100' : ''))]]);
      const client = new DesfireClient(script);
      client.adoptSession(ev2Session(c));
      const keyNo = Number.parseInt(h(c.key_no), 16);
      await client.changeKey(keyNo, fromHex(h(c.new_key)), {
        keyType: 'aes', keyVersion: Number.parseInt(h(c.new_key_version), 16), picc: false,
        ...(same ? {} : { oldKey: fromHex(h(c.old_key)) }),
      });
      script.done();
      if (same) expect(client.session).toBeUndefined();
    });
  }
});
