// Command byte -> handler, with the profile each command needs.
import { Cmd } from '../core/protocol/commands.js';
import type { CardContext, Reply, Req } from './context.js';
import { createApplication, deleteApplication, getApplicationIds, getDfNames, selectApplication } from './commands/application.js';
import { authenticate } from './commands/auth.js';
import { readData, writeData, writeDataExpected } from './commands/data.js';
import { changeFileSettings, createFile, createTransactionMacFile, deleteFile, getFileIds, getFileSettings, getIsoFileIds } from './commands/files.js';
import { changeKey, changeKeySettings, getKeySettings, getKeyVersion } from './commands/keys.js';
import { formatPicc, getCardUid, getFreeMemory, getVersion, readSig, setConfiguration } from './commands/picc.js';
import { clearRecordFile, readRecords, writeRecord, writeRecordExpected } from './commands/records.js';
import { abortTransaction, commitReaderId, commitTransaction } from './commands/transactions.js';
import { credit, debit, getValue, limitedCredit } from './commands/value.js';
import type { Profile } from './model.js';
import { ST, fault } from './status.js';

type Handler = (ctx: CardContext, req: Req) => Reply;

interface Entry {
  run: Handler;
  /** Oldest profile that knows the command. */
  since?: Profile;
}

const TABLE = new Map<number, Entry>([
  [Cmd.AUTHENTICATE_LEGACY, { run: authenticate }],
  [Cmd.AUTHENTICATE_ISO, { run: authenticate }],
  [Cmd.AUTHENTICATE_AES, { run: authenticate }],
  [Cmd.AUTHENTICATE_EV2_FIRST, { run: authenticate, since: 'ev2' }],
  [Cmd.AUTHENTICATE_EV2_NON_FIRST, { run: authenticate, since: 'ev2' }],
  [Cmd.GET_VERSION, { run: getVersion }],
  [Cmd.FORMAT_PICC, { run: formatPicc }],
  [Cmd.FREE_MEMORY, { run: getFreeMemory }],
  [Cmd.GET_CARD_UID, { run: getCardUid }],
  [Cmd.SET_CONFIGURATION, { run: setConfiguration }],
  [Cmd.READ_SIG, { run: readSig, since: 'ev2' }],
  [Cmd.SELECT_APPLICATION, { run: selectApplication }],
  [Cmd.CREATE_APPLICATION, { run: createApplication }],
  [Cmd.DELETE_APPLICATION, { run: deleteApplication }],
  [Cmd.GET_APPLICATION_IDS, { run: getApplicationIds }],
  [Cmd.GET_DF_NAMES, { run: getDfNames }],
  [Cmd.GET_KEY_SETTINGS, { run: getKeySettings }],
  [Cmd.CHANGE_KEY_SETTINGS, { run: changeKeySettings }],
  [Cmd.GET_KEY_VERSION, { run: getKeyVersion }],
  [Cmd.CHANGE_KEY, { run: changeKey }],
  [Cmd.CREATE_STD_DATA_FILE, { run: createFile }],
  [Cmd.CREATE_BACKUP_DATA_FILE, { run: createFile }],
  [Cmd.CREATE_VALUE_FILE, { run: createFile }],
  [Cmd.CREATE_LINEAR_RECORD_FILE, { run: createFile }],
  [Cmd.CREATE_CYCLIC_RECORD_FILE, { run: createFile }],
  [Cmd.CREATE_TRANSACTION_MAC_FILE, { run: createTransactionMacFile, since: 'ev2' }],
  [Cmd.DELETE_FILE, { run: deleteFile }],
  [Cmd.GET_FILE_IDS, { run: getFileIds }],
  [Cmd.GET_ISO_FILE_IDS, { run: getIsoFileIds }],
  [Cmd.GET_FILE_SETTINGS, { run: getFileSettings }],
  [Cmd.CHANGE_FILE_SETTINGS, { run: changeFileSettings }],
  [Cmd.READ_DATA, { run: readData }],
  [Cmd.READ_DATA_EV2, { run: readData, since: 'ev2' }],
  [Cmd.WRITE_DATA, { run: writeData }],
  [Cmd.WRITE_DATA_EV2, { run: writeData, since: 'ev2' }],
  [Cmd.GET_VALUE, { run: getValue }],
  [Cmd.CREDIT, { run: credit }],
  [Cmd.DEBIT, { run: debit }],
  [Cmd.LIMITED_CREDIT, { run: limitedCredit }],
  [Cmd.WRITE_RECORD, { run: writeRecord }],
  [Cmd.WRITE_RECORD_EV2, { run: writeRecord, since: 'ev2' }],
  [Cmd.READ_RECORDS, { run: readRecords }],
  [Cmd.READ_RECORDS_EV2, { run: readRecords, since: 'ev2' }],
  [Cmd.CLEAR_RECORD_FILE, { run: clearRecordFile }],
  [Cmd.COMMIT_TRANSACTION, { run: commitTransaction }],
  [Cmd.ABORT_TRANSACTION, { run: abortTransaction }],
  [Cmd.COMMIT_READER_ID, { run: commitReaderId, since: 'ev2' }],
]);

const ORDER: Profile[] = ['ev1', 'ev2', 'ev3'];

function entry(ctx: CardContext, ins: number): Entry {
  const e = TABLE.get(ins);
  if (!e || (e.since && ORDER.indexOf(ctx.state.profile) < ORDER.indexOf(e.since))) throw fault(ST.ILLEGAL_COMMAND, 'command not supported');
  return e;
}

export function dispatch(ctx: CardContext, req: Req): Reply {
  return entry(ctx, req.ins).run(ctx, req);
}

/**
 * How many bytes (after INS) a command that may span several frames carries in total, decided
 * from its first frame as a real card does (WriteData/WriteRecord: the header's length and the
 * file's comm mode). undefined: the command is complete as it is.
 */
export function expectedCommandLength(ctx: CardContext, ins: number, first: Uint8Array): number | undefined {
  if (!TABLE.has(ins) || first.length < 7) return undefined;
  const req: Req = { ins, body: first };
  switch (ins) {
    case Cmd.WRITE_DATA:
    case Cmd.WRITE_DATA_EV2:
      entry(ctx, ins);
      return writeDataExpected(ctx, req);
    case Cmd.WRITE_RECORD:
    case Cmd.WRITE_RECORD_EV2:
      entry(ctx, ins);
      return writeRecordExpected(ctx, req);
    default:
      return undefined;
  }
}
