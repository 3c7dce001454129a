// DESFire native command codes (the INS byte of an ISO 7816-4 wrapped command, CLA 0x90).
// One table: code -> name. `Cmd.X` gives the byte, `commandName(byte)` the name.

export const Cmd = {
  // Authentication
  AUTHENTICATE_LEGACY: 0x0a,
  AUTHENTICATE_ISO: 0x1a,
  AUTHENTICATE_AES: 0xaa,
  AUTHENTICATE_EV2_FIRST: 0x71,
  AUTHENTICATE_EV2_NON_FIRST: 0x77,
  // Additional frame (continuation of a chained command or response)
  ADDITIONAL_FRAME: 0xaf,
  // Data
  WRITE_DATA: 0x3d,
  READ_DATA: 0xbd,
  WRITE_RECORD: 0x3b,
  READ_RECORDS: 0xbb,
  CLEAR_RECORD_FILE: 0xeb,
  CREDIT: 0x0c,
  DEBIT: 0xdc,
  LIMITED_CREDIT: 0x1c,
  GET_VALUE: 0x6c,
  // EV2 variants (ISO-style data exchange)
  READ_DATA_EV2: 0xad,
  WRITE_DATA_EV2: 0x8d,
  READ_RECORDS_EV2: 0xab,
  WRITE_RECORD_EV2: 0x8b,
  // Keys
  GET_KEY_SETTINGS: 0x45,
  CHANGE_KEY_SETTINGS: 0x54,
  CHANGE_KEY: 0xc4,
  CHANGE_KEY_EV2: 0xc6,
  GET_KEY_VERSION: 0x64,
  // PICC and applications
  GET_CARD_UID: 0x51,
  SELECT_APPLICATION: 0x5a,
  SET_CONFIGURATION: 0x5c,
  GET_VERSION: 0x60,
  GET_APPLICATION_IDS: 0x6a,
  GET_DF_NAMES: 0x6d,
  FREE_MEMORY: 0x6e,
  CREATE_APPLICATION: 0xca,
  DELETE_APPLICATION: 0xda,
  FORMAT_PICC: 0xfc,
  READ_SIG: 0x3c,
  // Files
  CHANGE_FILE_SETTINGS: 0x5f,
  GET_ISO_FILE_IDS: 0x61,
  GET_FILE_IDS: 0x6f,
  GET_FILE_SETTINGS: 0xf5,
  CREATE_STD_DATA_FILE: 0xcd,
  CREATE_BACKUP_DATA_FILE: 0xcb,
  CREATE_VALUE_FILE: 0xcc,
  CREATE_LINEAR_RECORD_FILE: 0xc1,
  CREATE_CYCLIC_RECORD_FILE: 0xc0,
  CREATE_TRANSACTION_MAC_FILE: 0xce,
  DELETE_FILE: 0xdf,
  // Transactions
  COMMIT_TRANSACTION: 0xc7,
  ABORT_TRANSACTION: 0xa7,
  COMMIT_READER_ID: 0xc8,
} as const;

export type CommandName = keyof typeof Cmd;
export type CommandCode = (typeof Cmd)[CommandName];

const NAMES = new Map<number, CommandName>(
  (Object.entries(Cmd) as [CommandName, number][]).map(([name, code]) => [code, name]),
);

/** The name of a native command byte, or undefined when it is not a known DESFire command. */
export function commandName(ins: number): CommandName | undefined {
  return NAMES.get(ins);
}

/** True when `ins` is a known DESFire native command code. */
export function isKnownCommand(ins: number): boolean {
  return NAMES.has(ins);
}
