// Issuance + installation of the campus layout alone, on N in-process virtual cards (default 300;
// the issue's benchmark is N = 1,000: `npx tsx bench/install.ts 1000`), through 4 stations over
// HTTPS + mTLS — the same driver as the `cms` module's first part — printing its figures, or the
// server's warn/error log lines when a station fails. The server is this process, so
// `node --cpu-prof --import tsx bench/install.ts 1000` profiles it.
import { setup, issueInstallFigures } from './cms.js';
const { h, cms } = await setup({});
try {
  const r = await issueInstallFigures(h, cms, Number(process.argv[2] ?? 300));
  console.log(r.figures.map((f) => `${f.name} ${f.value}`).join('\n'));
} catch (e) {
  console.log('FAILED', (e as Error).message);
  console.log(h.logLines.filter((l) => /"level":(50|40)/.test(l)).slice(0, 5).join('\n'));
} finally { await h.close(); }
