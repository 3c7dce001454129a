// `desfire-cms backup --data-dir DIR --out FILE`: an online, consistent backup of the embedded
// deployment (SQLite databases through SQLite's backup API while the server runs, the sealed vault,
// the audit checkpoint key and CA material) in one .tar.gz with a manifest of SHA-256 digests.
// The audit log of the snapshot is verified before the archive is written. See docs/operations.md.
import path from 'node:path';
import { type CliIO, type Command, UsageError } from '../io.js';
import { parseFlags } from './config.js';

const USAGE = 'usage: desfire-cms backup --data-dir DIR --out FILE.tar.gz';

export const command: Command = {
  async run(args: string[], io: CliIO): Promise<number> {
    if (args[0] === '--help' || args[0] === '-h' || args[0] === 'help') {
      io.out(USAGE);
      return 0;
    }
    const f = parseFlags(args, ['data-dir', 'out']);
    if (f.positional.length > 0) throw new UsageError(`unexpected argument '${f.positional[0]}'`);
    const dataDir = f.values['data-dir'] ?? io.env.DESFIRE_CMS_DATA_DIR;
    if (!dataDir) throw new UsageError('--data-dir is required');
    if (!f.values.out) throw new UsageError('--out is required');
    const { createBackup } = await import('../../cms/ops/backup.js');
    const out = path.resolve(io.cwd, f.values.out);
    const r = await createBackup(path.resolve(io.cwd, dataDir), out);
    const m = r.manifest;
    for (const x of m.files) io.out(`  ${x.kind.padEnd(6)} ${x.path} ${x.size} bytes sha256 ${x.sha256}`);
    if (m.audit) io.out(`audit log verified in the snapshot: ${m.audit.entries} entries, ${m.audit.checkpoints} checkpoints, latest checkpoint ${m.audit.checkpointSize} root ${m.audit.checkpointRoot || '-'}`);
    else io.out('no audit log found in the snapshot (nothing to verify)');
    io.out(`backup written: ${out} (${r.archiveBytes} bytes, ${m.files.length} files, mode 0600; it holds the audit signing key: store it like a secret)`);
    return 0;
  },
};
