// ESLint rule: the layer boundaries of docs/architecture.md, enforced.
//
//   core       -> core (and only pure node built-ins: node:crypto, node:buffer)
//   card       -> core, card
//   transport  -> core, card, transport
//   custody    -> core, custody
//   cms        -> core, custody, transport, cms
//   reader     -> core, card, transport, custody, reader
//   cli        -> anything
//
// Native drivers (pcsclite, pkcs11js, better-sqlite3, pg, ioredis) may never be imported
// statically (type-only imports are fine): adapters load them lazily with `await import()`, so
// that `npm ci` works without system libraries and the reader agent never loads `pg`.
import path from 'node:path';
import process from 'node:process';

export const ALLOWED = {
  core: ['core'],
  card: ['core', 'card'],
  transport: ['core', 'card', 'transport'],
  custody: ['core', 'custody'],
  cms: ['core', 'custody', 'transport', 'cms'],
  reader: ['core', 'card', 'transport', 'custody', 'reader'],
  cli: ['core', 'card', 'transport', 'custody', 'cms', 'reader', 'cli'],
};

const CORE_NODE_ALLOWED = new Set(['crypto', 'buffer']);
const NATIVE = new Set(['pcsclite', 'pkcs11js', 'better-sqlite3', 'pg', 'ioredis', 'graphene-pk11']);

function layerOf(file) {
  const rel = path.relative(process.cwd(), file).split(path.sep);
  if (rel[0] !== 'src' || rel.length < 3) return undefined;
  return rel[1];
}

function isBuiltin(spec) {
  return spec.startsWith('node:');
}

export default {
  meta: {
    type: 'problem',
    docs: { description: 'enforce desfire-cms layer boundaries' },
    schema: [],
  },
  create(context) {
    const file = context.filename ?? context.getFilename();
    const from = layerOf(file);

    function check(node, spec, { typeOnly, dynamic }) {
      if (typeof spec !== 'string') return;
      const bare = spec.split('/')[0];
      if (NATIVE.has(bare) && !typeOnly && !dynamic) {
        context.report({ node, message: `native driver '${spec}' must be loaded lazily with await import() inside its adapter` });
      }
      if (!from) return;
      if (from === 'core' && !typeOnly) {
        if (isBuiltin(spec) && !CORE_NODE_ALLOWED.has(spec.slice(5))) {
          context.report({ node, message: `src/core must stay pure: '${spec}' is not allowed (only node:crypto, node:buffer)` });
          return;
        }
        if (!spec.startsWith('.') && !isBuiltin(spec)) {
          context.report({ node, message: `src/core imports no third-party module ('${spec}')` });
          return;
        }
      }
      if (!spec.startsWith('.')) return;
      const target = path.resolve(path.dirname(file), spec);
      const to = layerOf(target);
      if (!to) {
        context.report({ node, message: `src/${from} may not import '${spec}' from outside src/` });
        return;
      }
      const allowed = ALLOWED[from];
      if (allowed && !allowed.includes(to)) {
        context.report({ node, message: `layer violation: src/${from} may not import src/${to} ('${spec}'); allowed: ${allowed.join(', ')}` });
      }
    }

    return {
      ImportDeclaration(node) {
        check(node, node.source.value, { typeOnly: node.importKind === 'type', dynamic: false });
      },
      ExportNamedDeclaration(node) {
        if (node.source) check(node, node.source.value, { typeOnly: node.exportKind === 'type', dynamic: false });
      },
      ExportAllDeclaration(node) {
        check(node, node.source.value, { typeOnly: node.exportKind === 'type', dynamic: false });
      },
      ImportExpression(node) {
        if (node.source.type === 'Literal') check(node, node.source.value, { typeOnly: false, dynamic: true });
      },
    };
  },
};
