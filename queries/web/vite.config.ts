/// <reference types="vitest/config" />
// Two HTML entries: index.html (dashboard, served at /) and 3d.html (served
// at /3d). index.html also routes /3d itself, so serving it for both works.
import { resolve } from 'node:path';
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 800,
    rollupOptions: {
      input: {
        index: resolve(import.meta.dirname, 'index.html'),
        '3d': resolve(import.meta.dirname, '3d.html'),
      },
    },
  },
  server: {
    // `npm run dev` against a running backend or the mock server.
    proxy: {
      '/api': { target: process.env.TWINLINE_URL ?? 'http://127.0.0.1:8080', ws: true, changeOrigin: true },
    },
  },
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
  },
});
