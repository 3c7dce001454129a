// Vite build of the operator console: console/ → console/dist, served by the API at /console/.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root,
  base: '/console/',
  logLevel: 'warn',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    // one small bundle; the strict CSP of the server allows only same-origin scripts and styles
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
});
