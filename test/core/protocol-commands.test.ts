import { describe, expect, it } from 'vitest';
import { Cmd, commandName, isKnownCommand, COMMAND_PROTECTION, commandCommModes, fileCommModes, protectionCommModes } from '../../src/core/protocol/index.js';

// Every command code of DESFIRE-FACTS.md, written out independently.
const FACTS: Record<string, number> = {
  AUTHENTICATE_LEGACY: 0x0a, AUTHENTICATE_ISO: 0x1a, AUTHENTICATE_AES: 0xaa, AUTHENTICATE_EV2_FIRST: 0x71, AUTHENTICATE_EV2_NON_FIRST: 0x77,
  WRITE_DATA: 0x3d, READ_DATA: 0xbd, WRITE_RECORD: 0x3b, READ_RECORDS: 0xbb, CLEAR_RECORD_FILE: 0xeb, CREDIT: 0x0c, DEBIT: 0xdc,
  LIMITED_CREDIT: 0x1c, GET_VALUE: 0x6c, WRITE_DATA_EV2: 0x8d, READ_DATA_EV2: 0xad, WRITE_RECORD_EV2: 0x8b, READ_RECORDS_EV2: 0xab,
  GET_KEY_SETTINGS: 0x45, CHANGE_KEY_SETTINGS: 0x54, CHANGE_KEY: 0xc4, CHANGE_KEY_EV2: 0xc6, GET_KEY_VERSION: 0x64,
  GET_CARD_UID: 0x51, SELECT_APPLICATION: 0x5a, SET_CONFIGURATION: 0x5c, GET_VERSION: 0x60, GET_APPLICATION_IDS: 0x6a,
  GET_DF_NAMES: 0x6d, FREE_MEMORY: 0x6e, CREATE_APPLICATION: 0xca, DELETE_APPLICATION: 0xda, FORMAT_PICC: 0xfc, READ_SIG: 0x3c,
  CHANGE_FILE_SETTINGS: 0x5f, GET_ISO_FILE_IDS: 0x61, GET_FILE_IDS: 0x6f, GET_FILE_SETTINGS: 0xf5, CREATE_STD_DATA_FILE: 0xcd,
  CREATE_BACKUP_DATA_FILE: 0xcb, CREATE_VALUE_FILE: 0xcc, CREATE_LINEAR_RECORD_FILE: 0xc1, CREATE_CYCLIC_RECORD_FILE: 0xc0,
  CREATE_TRANSACTION_MAC_FILE: 0xce, DELETE_FILE: 0xdf, COMMIT_TRANSACTION: 0xc7, ABORT_TRANSACTION: 0xa7, COMMIT_READER_ID: 0xc8,
  ADDITIONAL_FRAME: 0xaf,
};

describe('command codes', () => {
  it('has every code of the facts sheet, each byte once', () => {
    expect(Cmd).toEqual(FACTS);
    expect(new Set(Object.values(Cmd)).size).toBe(Object.keys(Cmd).length);
    for (const [name, code] of Object.entries(FACTS)) {
      expect(commandName(code)).toBe(name);
      expect(isKnownCommand(code)).toBe(true);
    }
    expect(commandName(0x00)).toBeUndefined();
  });
});

describe('comm-mode table', () => {
  it('management commands: D40 plain, EV1 plain command + MAC response, EV2 MAC both ways', () => {
    expect(commandCommModes(Cmd.GET_FILE_SETTINGS, 'd40')).toEqual({ command: 'plain', response: 'plain' });
    expect(commandCommModes(Cmd.GET_FILE_SETTINGS, 'ev1')).toEqual({ command: 'plain', response: 'mac' });
    expect(commandCommModes(Cmd.GET_FILE_SETTINGS, 'ev2')).toEqual({ command: 'mac', response: 'mac' });
    expect(commandCommModes(Cmd.CHANGE_KEY_SETTINGS, 'ev2')).toEqual({ command: 'full', response: 'mac' });
    expect(commandCommModes(Cmd.GET_CARD_UID, 'ev1')).toEqual({ command: 'plain', response: 'full' });
    expect(commandCommModes(Cmd.SELECT_APPLICATION, 'ev2')).toEqual({ command: 'plain', response: 'plain' });
    expect(commandCommModes(Cmd.READ_DATA, 'ev2')).toBeUndefined();
    for (const ins of Object.keys(COMMAND_PROTECTION)) expect(isKnownCommand(Number(ins))).toBe(true);
    expect(protectionCommModes('d40', 'full-command')).toEqual({ command: 'full', response: 'plain' });
  });
  it('file operations follow the file', () => {
    expect(fileCommModes('ev2', 'full', 'read')).toEqual({ command: 'mac', response: 'full' });
    expect(fileCommModes('ev2', 'plain', 'read')).toEqual({ command: 'plain', response: 'plain' });
    expect(fileCommModes('ev1', 'full', 'read')).toEqual({ command: 'plain', response: 'full' });
    expect(fileCommModes('ev2', 'full', 'write')).toEqual({ command: 'full', response: 'mac' });
    expect(fileCommModes('ev2', 'plain', 'write')).toEqual({ command: 'plain', response: 'plain' });
    expect(fileCommModes('ev1', 'plain', 'write')).toEqual({ command: 'plain', response: 'mac' });
    expect(fileCommModes('d40', 'full', 'write')).toEqual({ command: 'full', response: 'plain' });
  });
});
