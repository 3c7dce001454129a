// A durable local audit sink: one JSON line per event, appended and fsync'ed before `append`
// resolves. The CLI uses it (DIR/custody-audit.jsonl) when it runs custody operations itself;
// the server uses the CMS's tamper-evident audit log instead.
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import type { AuditEvent, AuditSink } from './audit.js';

export class JsonlAuditSink implements AuditSink {
  constructor(private readonly file: string) {}

  async append(event: AuditEvent): Promise<void> {
    const fd = openSync(this.file, 'a', 0o600);
    try {
      writeSync(fd, JSON.stringify(event) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}
