// ISO 8601 text of a time, the last one kept: the audit events and deliveries of one millisecond
// (or one second) share the string instead of each formatting a Date.

/** A formatter of ms times that keeps its last answer. */
export function lastIsoTime(): (ms: number) => string {
  let lastMs = NaN;
  let lastIso = '';
  return (ms) => {
    if (ms !== lastMs) {
      lastIso = new Date(ms).toISOString();
      lastMs = ms;
    }
    return lastIso;
  };
}
