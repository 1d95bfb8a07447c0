/**
 * Browser tests of the Packages panel against a real `jupyter lab` with bifrost_ext
 * (started per test file by tests/fixtures.ts through start_lab.py), in Debian's chromium.
 * Every test runs twice: at the server's root and under JupyterHub's `/user/alice/` prefix.
 */
import { defineConfig } from '@playwright/test';
import type { BifrostWorkerOptions } from './tests/fixtures';

export default defineConfig<object, BifrostWorkerOptions>({
  testDir: './tests',
  // The docs' screenshots are no test: taken with BIFROST_SCREENSHOTS=1 scripts/test-ui.
  testIgnore: process.env.BIFROST_SCREENSHOTS ? [] : ['**/screenshots.spec.ts'],
  outputDir: './test-results',
  // A test waits on conditions, each bounded by expect's timeout; a server start (per file)
  // is bounded by the launcher's own.
  timeout: 90_000,
  expect: { timeout: 20_000 },
  workers: Number(process.env.BIFROST_UI_WORKERS || 2),
  fullyParallel: false,
  forbidOnly: !!process.env.CI,
  retries: 0,
  reporter: [['list'], ['html', { outputFolder: 'playwright-report', open: 'never' }]],
  use: {
    browserName: 'chromium',
    launchOptions: { executablePath: process.env.BIFROST_CHROMIUM || '/usr/bin/chromium' },
    viewport: { width: 1280, height: 860 },
    screenshot: 'only-on-failure',
    trace: 'retain-on-failure',
    video: 'off',
    actionTimeout: 15_000,
    navigationTimeout: 60_000,
    acceptDownloads: true,
  },
  projects: [
    { name: 'root', use: { basePath: '/' } },
    { name: 'alice', use: { basePath: '/user/alice/' } },
  ],
});
