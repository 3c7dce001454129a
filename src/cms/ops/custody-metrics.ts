// Custody operation latency by backend: a wrapper around any KeyCustody that times each call and
// reports it through CmsMetrics. Custody itself knows nothing of metrics; the composition root
// wraps the backend it opened. Results and errors pass through unchanged.
import type { KeyCustody } from '../../custody/types.js';
import type { CmsMetrics } from './metrics.js';

const TIMED = [
  'createKey',
  'importKey',
  'rotateKey',
  'getKey',
  'getKeys',
  'listKeys',
  'listVersions',
  'setMinVersions',
  'disableVersion',
  'destroyVersion',
  'wrap',
  'generateKey',
  'rewrap',
  'rewrapMany',
  'verifyWrapped',
  'seal',
  'sealMany',
  'exportForCard',
  'sealMaster',
  'exportKey',
] as const satisfies readonly (keyof KeyCustody)[];

export function timedCustody(inner: KeyCustody, backend: string, metrics: CmsMetrics): KeyCustody {
  const timed = new Set<string>(TIMED);
  const cache = new Map<PropertyKey, unknown>();
  return new Proxy(inner, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target) as unknown;
      if (typeof v !== 'function') return v;
      let f = cache.get(prop);
      if (f) return f;
      const fn = (v as (...a: unknown[]) => unknown).bind(target);
      f = !timed.has(String(prop))
        ? fn
        : async (...args: unknown[]) => {
            const t0 = performance.now();
            let result: 'ok' | 'error' = 'error';
            try {
              const r = await fn(...args);
              result = 'ok';
              return r;
            } finally {
              try {
                metrics.custodyOp({ backend, op: String(prop), result, seconds: (performance.now() - t0) / 1000 });
              } catch {
                /* metrics never fail a custody call */
              }
            }
          };
      cache.set(prop, f);
      return f;
    },
  });
}
