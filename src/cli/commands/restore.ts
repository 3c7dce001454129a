// `desfire-cms restore --in FILE --data-dir DIR [--force] [--key VKEY | --key-file FILE]`: verify
// every digest of a backup archive, restore it into DIR through a staging directory, verify the
// restored audit log (and that it is the log that was backed up), then move it into place.
// A non-empty DIR is refused without --force; with --force it is kept aside, never deleted.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { type CliIO, type Command, UsageError } from '../io.js';
import { parseFlags } from './config.js';

const USAGE = 'usage: desfire-cms restore --in FILE.tar.gz --data-dir DIR [--force] [--key VKEY | --key-file FILE]';

export const command: Command = {
  async run(args: string[], io: CliIO): Promise<number> {
    if (args[0] === '--help' || args[0] === '-h' || args[0] === 'help') {
      io.out(USAGE);
      return 0;
    }
    const f = parseFlags(args, ['in', 'data-dir', 'key', 'key-file'], ['force']);
    if (f.positional.length > 0) throw new UsageError(`unexpected argument '${f.positional[0]}'`);
    if (!f.values.in) throw new UsageError('--in is required');
    if (!f.values['data-dir']) throw new UsageError('--data-dir is required');
    if (f.values.key && f.values['key-file']) throw new UsageError('give either --key or --key-file, not both');
    let vkey = f.values.key;
    if (f.values['key-file']) {
      try {
        vkey = readFileSync(path.resolve(io.cwd, f.values['key-file']), 'utf8').trim();
      } catch {
        throw new UsageError(`--key-file: cannot read ${f.values['key-file']}`);
      }
    }
    const { restoreBackup } = await import('../../cms/ops/backup.js');
    const dir = path.resolve(io.cwd, f.values['data-dir']);
    const r = await restoreBackup(path.resolve(io.cwd, f.values.in), dir, { force: f.bools.has('force'), ...(vkey ? { vkey } : {}) });
    io.out(`digests verified: ${r.manifest.files.length} files (backup of ${r.manifest.createdAt} on ${r.manifest.host})`);
    if (r.audit) io.out(`audit log verified after restore: ${r.audit.entries} entries, ${r.audit.checkpoints} checkpoints, latest checkpoint ${r.audit.checkpointSize} root ${r.audit.checkpointRoot || '-'}${vkey ? ' (pinned key)' : ' (key recorded in the backup; pin one with --key)'}`);
    if (r.previous) io.out(`the previous contents of the data directory were moved to ${r.previous}`);
    io.out(`restored into ${dir}; start the server and unseal the vault as usual`);
    return 0;
  },
};
