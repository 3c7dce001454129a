import { setup, issueInstallFigures } from './cms.js';
const { h, cms } = await setup({});
try {
  const r = await issueInstallFigures(h, cms, Number(process.argv[2] ?? 300));
  console.log(r.figures.map((f) => `${f.name} ${f.value}`).join('\n'));
} catch (e) {
  console.log('FAILED', (e as Error).message);
  console.log(h.logLines.filter((l) => /"level":(50|40)/.test(l)).slice(0, 5).join('\n'));
} finally { await h.close(); }
