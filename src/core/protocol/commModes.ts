// Which comm mode protects each command and its response inside an authenticated session, per
// session generation — one table shared by the host client and the virtual card so both sides agree.
//
// Management commands (everything that is not a file data operation):
//   D40 sessions: nothing is MAC'd (D40 only protects file data; ChangeKeySettings is enciphered).
//   EV1 sessions: commands go plain (the CMAC is computed over them to advance the IV, not sent),
//                 every response carries an 8-byte CMAC.
//   EV2 sessions: commands and responses carry MACt (CommMode.MAC), as AN12196 §5.3 shows for
//                 GetFileSettings.
// Commands with enciphered data (ChangeKeySettings, SetConfiguration, ChangeFileSettings) send it
// in full mode; GetCardUID and Read_Sig answer in full mode. ChangeKey and the authentication
// commands have their own cryptograms (src/core/auth, src/core/sm/changekey.ts) and are not listed.
// SelectApplication ends the session, so it always goes plain.
//
// File data operations follow the file's comm mode (fileCommModes below): the read commands carry
// no data, so EV1 sends them plain and EV2 MACs them unless the file is plain; write responses carry
// only a MAC (EV1 always, EV2 unless the file is plain).

import type { CommMode, SessionKind } from '../sm/types.js';
import { Cmd } from './commands.js';

export interface CommModes {
  readonly command: CommMode;
  readonly response: CommMode;
}

/** How a management command is protected: 'mac', full command data, or full response data. */
export type CommandProtection = 'plain' | 'mac' | 'full-command' | 'full-response';

export const COMMAND_PROTECTION: Readonly<Record<number, CommandProtection>> = {
  [Cmd.SELECT_APPLICATION]: 'plain',
  [Cmd.GET_VERSION]: 'mac',
  [Cmd.FORMAT_PICC]: 'mac',
  [Cmd.FREE_MEMORY]: 'mac',
  [Cmd.GET_APPLICATION_IDS]: 'mac',
  [Cmd.GET_DF_NAMES]: 'mac',
  [Cmd.CREATE_APPLICATION]: 'mac',
  [Cmd.DELETE_APPLICATION]: 'mac',
  [Cmd.GET_KEY_SETTINGS]: 'mac',
  [Cmd.GET_KEY_VERSION]: 'mac',
  [Cmd.GET_FILE_IDS]: 'mac',
  [Cmd.GET_ISO_FILE_IDS]: 'mac',
  [Cmd.GET_FILE_SETTINGS]: 'mac',
  [Cmd.CREATE_STD_DATA_FILE]: 'mac',
  [Cmd.CREATE_BACKUP_DATA_FILE]: 'mac',
  [Cmd.CREATE_VALUE_FILE]: 'mac',
  [Cmd.CREATE_LINEAR_RECORD_FILE]: 'mac',
  [Cmd.CREATE_CYCLIC_RECORD_FILE]: 'mac',
  [Cmd.DELETE_FILE]: 'mac',
  [Cmd.CLEAR_RECORD_FILE]: 'mac',
  [Cmd.COMMIT_TRANSACTION]: 'mac',
  [Cmd.ABORT_TRANSACTION]: 'mac',
  [Cmd.CHANGE_KEY_SETTINGS]: 'full-command',
  [Cmd.SET_CONFIGURATION]: 'full-command',
  [Cmd.CHANGE_FILE_SETTINGS]: 'full-command',
  // EV2+ Transaction MAC: the TMAC key goes enciphered (header fileNo..TMKeyOption plain, MAC'd);
  // CommitReaderID's TMRI goes MAC'd, its EncTMRI answer too (as NXP's reader library sends it).
  [Cmd.CREATE_TRANSACTION_MAC_FILE]: 'full-command',
  [Cmd.COMMIT_READER_ID]: 'mac',
  [Cmd.GET_CARD_UID]: 'full-response',
  [Cmd.READ_SIG]: 'full-response',
};

/** Comm modes of a management command under a session of `kind`. */
export function protectionCommModes(kind: SessionKind, p: CommandProtection): CommModes {
  if (p === 'plain') return { command: 'plain', response: 'plain' };
  const macCmd: CommMode = kind === 'ev2' ? 'mac' : 'plain';
  const macResp: CommMode = kind === 'd40' ? 'plain' : 'mac';
  switch (p) {
    case 'mac': return { command: macCmd, response: macResp };
    case 'full-command': return { command: 'full', response: macResp };
    case 'full-response': return { command: macCmd, response: 'full' };
  }
}

/** Comm modes of a listed management command (undefined for file data operations and unknown INS). */
export function commandCommModes(ins: number, kind: SessionKind): CommModes | undefined {
  const p = COMMAND_PROTECTION[ins];
  return p === undefined ? undefined : protectionCommModes(kind, p);
}

/**
 * Comm modes of a file data operation. `read`: ReadData, ReadRecords, GetValue (command without
 * data, response with data). `write`: WriteData, WriteRecord, Credit, Debit, LimitedCredit.
 */
export function fileCommModes(kind: SessionKind, fileComm: CommMode, op: 'read' | 'write'): CommModes {
  if (op === 'read') {
    const command: CommMode = kind === 'ev2' && fileComm !== 'plain' ? 'mac' : 'plain';
    return { command, response: fileComm };
  }
  const response: CommMode = kind === 'd40' ? 'plain' : kind === 'ev1' ? 'mac' : fileComm === 'plain' ? 'plain' : 'mac';
  return { command: fileComm, response };
}
