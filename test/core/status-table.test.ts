import { describe, expect, it } from 'vitest';
import { CardStatusError, Status, checkStatus, statusName, statusDescription, type StatusName } from '../../src/core/protocol/index.js';
import { DesfireError } from '../../src/core/errors.js';

// The status list of DESFIRE-FACTS.md, independently written here.
const FACTS: [number, string][] = [
  [0x00, 'OPERATION_OK'], [0x0c, 'NO_CHANGES'], [0x0e, 'OUT_OF_EEPROM'], [0x1c, 'ILLEGAL_COMMAND'],
  [0x1e, 'INTEGRITY_ERROR'], [0x40, 'NO_SUCH_KEY'], [0x7e, 'LENGTH_ERROR'], [0x9d, 'PERMISSION_DENIED'],
  [0x9e, 'PARAMETER_ERROR'], [0xa0, 'APPLICATION_NOT_FOUND'], [0xa1, 'APPLICATION_INTEGRITY_ERROR'],
  [0xae, 'AUTHENTICATION_ERROR'], [0xaf, 'ADDITIONAL_FRAME'], [0xbe, 'BOUNDARY_ERROR'],
  [0xc1, 'PICC_INTEGRITY_ERROR'], [0xca, 'COMMAND_ABORTED'], [0xcd, 'PICC_DISABLED'], [0xce, 'COUNT_ERROR'],
  [0xde, 'DUPLICATE_ERROR'], [0xee, 'MEMORY_ERROR'], [0xf0, 'FILE_NOT_FOUND'], [0xf1, 'FILE_INTEGRITY_ERROR'],
];

describe('status table', () => {
  it('covers every status of the facts sheet and nothing else', () => {
    expect(Object.keys(Status)).toHaveLength(FACTS.length);
    for (const [byte, name] of FACTS) {
      expect(statusName(byte)).toBe(name);
      expect(Status[name as StatusName]).toBe(byte);
      expect(statusDescription(byte)).not.toBe('unknown status');
    }
  });

  it('gives each status a typed error with stable code, byte and name', () => {
    for (const [byte, name] of FACTS) {
      const e = new CardStatusError(byte, 0xbd);
      expect(e).toBeInstanceOf(DesfireError);
      expect(e.code).toBe(`ERR_CARD_${name}`);
      expect(e.status).toBe(byte);
      expect(e.statusName).toBe(name);
      expect(e.ins).toBe(0xbd);
    }
    const pd = CardStatusError.of('PERMISSION_DENIED');
    expect(pd.status).toBe(0x9d);
    expect(pd.code).toBe('ERR_CARD_PERMISSION_DENIED');
  });

  it('names unknown bytes UNKNOWN and rejects non-bytes', () => {
    const e = new CardStatusError(0x42);
    expect(e.statusName).toBe('UNKNOWN');
    expect(e.code).toBe('ERR_CARD_UNKNOWN');
    expect(statusName(0x42)).toBeUndefined();
    expect(() => new CardStatusError(256)).toThrow(RangeError);
  });

  it('checkStatus passes 00, AF only when allowed, throws otherwise', () => {
    expect(() => checkStatus(0x00)).not.toThrow();
    expect(() => checkStatus(0xaf)).toThrow(CardStatusError);
    expect(() => checkStatus(0xaf, 0x60, true)).not.toThrow();
    expect(() => checkStatus(0x9d)).toThrow(expect.objectContaining({ code: 'ERR_CARD_PERMISSION_DENIED' }));
  });
});
