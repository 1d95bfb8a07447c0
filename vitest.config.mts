// Unit tests of the front end's logic (src/*.test.ts) in Node: no browser, no server.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node'
  }
});
