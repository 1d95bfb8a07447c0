// Unit tests of the front end's logic (src/*.test.ts) in Node: no browser, no server.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
    setupFiles: ['./vitest.setup.ts'],
    alias: {
      // The models need VDomModel alone; the package's index also loads web components
      // that want a browser's DOM, which these tests do without.
      '@jupyterlab/ui-components':
        '@jupyterlab/ui-components/lib/components/vdom.js'
    }
  }
});
