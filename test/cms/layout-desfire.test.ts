import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { layoutPlan, parseLayout } from '../../src/cms/layout/index.js';
import { decodeAccessRights, decodeCreateApplication, decodeCreateFile } from '../../src/core/protocol/codecs/index.js';
import { Cmd } from '../../src/core/protocol/commands.js';
import { toHex } from '../../src/core/crypto/bytes.js';

const CAMPUS = readFileSync(new URL('../../examples/campus.yaml', import.meta.url), 'utf8');

describe('layout → DESFire parameters', () => {
  const plan = layoutPlan(parseLayout(CAMPUS));
  const [access, cafe, library, transit] = plan.applications;

  it('PICC: key settings forbid free create/delete, random UID through SetConfiguration', () => {
    // masterKeyChangeable (1) | configurationChangeable (8)
    expect(plan.picc).toEqual({ keySettings: 0x09, randomUid: true, configurationByte: 0x02 });
  });

  it('CreateApplication: AID LSB first, key settings 1 = changeKey<<4 | flags, key settings 2 = count | AES', () => {
    expect(access!.keySettings1).toBe(0x09);
    expect(access!.keySettings2).toBe(0x83);
    expect(toHex(access!.createApplicationData)).toBe('01C0A10983');
    expect(toHex(cafe!.createApplicationData)).toBe('01FECA0983');
    expect(toHex(transit!.createApplicationData)).toBe('01007A0982');
    expect(access!.roleKeys).toEqual({ amk: 0, read: 1, write: 2 });
  });

  it('access rights bytes: byte0 = RW<<4 | Change, byte1 = R<<4 | W', () => {
    expect(toHex(access!.files[0]!.accessRights)).toBe('F012'); // R=1 W=2 RW=F C=0
    expect(toHex(cafe!.files[0]!.accessRights)).toBe('201F'); // R=debit(1) W=F RW=credit(2) C=0
    expect(toHex(library!.files[1]!.accessRights)).toBe('F0EF'); // public: R free
    expect(toHex(transit!.files[0]!.accessRights)).toBe('10FF'); // RW=1
  });

  it('Create*File: command byte and data', () => {
    expect(access!.files[0]!.command).toBe(Cmd.CREATE_STD_DATA_FILE);
    expect(toHex(access!.files[0]!.data)).toBe('0103F012200000');
    expect(cafe!.files[0]!.command).toBe(Cmd.CREATE_VALUE_FILE);
    expect(toHex(cafe!.files[0]!.data)).toBe('0103201F' + '00000000' + '50C30000' + '00000000' + '00');
    expect(library!.files[0]!.command).toBe(Cmd.CREATE_CYCLIC_RECORD_FILE);
    expect(toHex(library!.files[0]!.data)).toBe('0101F012' + '100000' + '0B0000');
    expect(transit!.files[0]!.command).toBe(Cmd.CREATE_BACKUP_DATA_FILE);
  });

  it('AN12343 example: R=1, W=2, RW=3, Change=0 is 30 12', () => {
    const l = parseLayout(`version: 1
name: an
tenants:
  - id: t
    name: T
    applications:
      - aid: "010203"
        name: a
        keys: [{ no: 0, role: amk }, { no: 1, role: read }, { no: 2, role: write }, { no: 3, role: readwrite }]
        files: [{ no: 1, type: std, size: 32, access: { read: read, write: write, readWrite: readwrite, change: amk } }]
`);
    expect(toHex(layoutPlan(l).applications[0]!.files[0]!.accessRights)).toBe('3012');
  });

  it('round trip: the card-side decoders read back exactly what the layout says', () => {
    for (const app of plan.applications) {
      const ca = decodeCreateApplication(app.createApplicationData);
      expect(ca.aid).toBe(parseInt(app.aid, 16));
      expect(ca.keyCount).toBe(app.keys.length);
      for (const f of app.files) {
        const d = decodeCreateFile(f.command, f.data);
        expect(d.fileNo).toBe(f.fileNo);
        expect(d.access).toEqual(decodeAccessRights(f.accessRights));
      }
    }
  });

  it('property: every role/free/never assignment maps to the right nibbles', () => {
    const roles = ['amk', 'read', 'write', 'readwrite'] as const;
    const val = fc.constantFrom<string>('free', 'never', ...roles);
    fc.assert(
      fc.property(val, val, val, val, (r, w, rw, c) => {
        const text = `version: 1
name: p
tenants:
  - id: t
    name: T
    applications:
      - aid: "0A0B0C"
        name: a
        keys: [{ no: 0, role: amk }, { no: 1, role: read }, { no: 2, role: write }, { no: 3, role: readwrite }]
        files: [{ no: 7, type: std, size: 4, access: { read: ${r}, write: ${w}, readWrite: ${rw}, change: ${c} } }]
`;
        const n = (v: string) => (v === 'free' ? 0xe : v === 'never' ? 0xf : roles.indexOf(v as (typeof roles)[number]));
        const ar = layoutPlan(parseLayout(text)).applications[0]!.files[0]!.accessRights;
        expect([...ar]).toEqual([(n(rw) << 4) | n(c), (n(r) << 4) | n(w)]);
      }),
      { numRuns: 150 },
    );
  });
});
