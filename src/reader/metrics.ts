// Reader agent metrics in the Prometheus text format, written to a file for node_exporter's
// textfile collector (a reader opens no extra port; the file is replaced atomically). Families:
//   desfire_reader_offline_seconds        since the CMS last answered (+Inf: never)
//   desfire_reader_cache_keys             offline key cache entries
//   desfire_reader_cache_age_seconds      age of the oldest cached key
//   desfire_reader_baton_pending_entries  audit baton entries not yet acknowledged by the CMS
//   desfire_reader_offline_masters        AN10922 masters held in memory for offline use (role flag
//                                         'offline-master'; each one is the key of every card of its key)
//   desfire_reader_stopped                1 once the agent stopped (revoked)
// No key material, no card UID: only counts and durations, labelled with the reader id.
import { renameSync, writeFileSync } from 'node:fs';

export interface ReaderMetricsSource {
  readerId: string;
  offlineForMs: number;
  stopped: string | undefined;
  cache: { size: number; oldestAgeMs: number };
  /** Offline diversification masters held (absent: 0). */
  masters?: { size: number };
  baton: { head: { seq: number }; acknowledged: number };
}

const label = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const num = (v: number): string => (v === Infinity ? '+Inf' : Number.isFinite(v) ? String(Math.round(v * 1000) / 1000) : 'NaN');

export function readerMetricsText(a: ReaderMetricsSource): string {
  const l = `{reader="${label(a.readerId)}"}`;
  const fam = (name: string, help: string, v: number) => `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${name}${l} ${num(v)}\n`;
  return (
    fam('desfire_reader_offline_seconds', 'seconds since the CMS last answered (+Inf: never)', a.offlineForMs / 1000) +
    fam('desfire_reader_cache_keys', 'keys in the offline cache', a.cache.size) +
    fam('desfire_reader_cache_age_seconds', 'age of the oldest key in the offline cache', a.cache.oldestAgeMs / 1000) +
    fam('desfire_reader_baton_pending_entries', 'audit baton entries not yet acknowledged by the CMS', Math.max(0, a.baton.head.seq - a.baton.acknowledged)) +
    fam('desfire_reader_offline_masters', 'AN10922 masters held in memory for offline use (each derives the key of every card of its AID and key number)', a.masters?.size ?? 0) +
    fam('desfire_reader_stopped', '1 once the agent stopped (certificate revoked)', a.stopped ? 1 : 0)
  );
}

/** Write the metrics to `file` atomically (temp file + rename), mode 0644. */
export function writeReaderMetrics(a: ReaderMetricsSource, file: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, readerMetricsText(a), { mode: 0o644 });
  renameSync(tmp, file);
}

/** Rewrite the file every `intervalMs` (default 15 s); returns a stop function. */
export function exportReaderMetrics(a: ReaderMetricsSource, file: string, intervalMs = 15_000): () => void {
  const tick = () => {
    try {
      writeReaderMetrics(a, file);
    } catch {
      /* a full disk must not stop the reader */
    }
  };
  tick();
  const t = setInterval(tick, intervalMs);
  t.unref();
  return () => clearInterval(t);
}
