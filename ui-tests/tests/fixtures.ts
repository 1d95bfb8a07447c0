/**
 * Fixtures of the Packages panel's browser tests.
 *
 * - `lab`: a real `jupyter lab` with bifrost_ext (ui-tests/start_lab.py), one per test file
 *   and project, started in the worker and stopped when the worker moves on to another file
 *   or ends. Its own port, token, folders and SQLite database: runs never meet.
 * - `api`: the packages API of that server, called with its token (what a script does).
 * - `lab` options per project (`basePath`) and per file (`test.use({ readOnly, seed })`).
 * - `page` (extended): fails a test whose page asked the server for anything outside the
 *   base URL, and keeps the page's uncaught errors with the report.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  test as base,
  expect,
  request as playwrightRequest,
  type APIRequestContext,
  type Locator,
  type Page,
  type TestInfo
} from '@playwright/test';

export const UI_TESTS = path.resolve(__dirname, '..');
export const REPO = path.resolve(UI_TESTS, '..');
const PYTHON = process.env.BIFROST_UI_PYTHON || path.join(REPO, '.venv', 'bin', 'python');
const LAUNCHER = path.join(UI_TESTS, 'start_lab.py');
export const SCREENSHOTS = path.join(UI_TESTS, 'test-results', 'screenshots');
const SERVER_LOGS = path.join(UI_TESTS, 'test-results', 'servers');
const START_TIMEOUT_MS = 240_000;

export const COMMAND = 'bifrost:open-packages';
export const PANEL_ID = 'bifrost-packages';

export interface LabServer {
  url: string;
  base_url: string;
  token: string;
  root: string;
  log: string;
  read_only: boolean;
  labextensions: string[];
}

export interface BifrostWorkerOptions {
  /** The server's base_url: "/" or JupyterHub's "/user/alice/". */
  basePath: string;
  /** Start the server with an authorizer that refuses `write` on `packages`. */
  readOnly: boolean;
  /** Requirements saved by the operator's CLI before the server starts. */
  seed: string[];
}

/** One launcher process and what it printed. */
class RunningLab {
  constructor(
    readonly key: string,
    readonly info: LabServer,
    private readonly child: ChildProcess
  ) {}

  static async start(key: string, options: BifrostWorkerOptions, logName: string) {
    fs.mkdirSync(SERVER_LOGS, { recursive: true });
    const args = [LAUNCHER, '--base-url', options.basePath, '--log', path.join(SERVER_LOGS, logName)];
    if (options.readOnly) args.push('--read-only');
    if (options.seed.length) args.push('--seed', ...options.seed);
    const child = spawn(PYTHON, args, { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stderr!.on('data', chunk => (stderr += chunk));
    const info = await new Promise<LabServer>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGTERM');
        reject(new Error(`start_lab.py gave no server within ${START_TIMEOUT_MS} ms:\n${stderr}`));
      }, START_TIMEOUT_MS);
      child.stdout!.on('data', chunk => {
        stdout += chunk;
        const newline = stdout.indexOf('\n');
        if (newline >= 0) {
          clearTimeout(timer);
          try {
            resolve(JSON.parse(stdout.slice(0, newline)));
          } catch (error) {
            reject(new Error(`start_lab.py printed ${stdout}: ${error}`));
          }
        }
      });
      child.on('exit', code => {
        clearTimeout(timer);
        reject(new Error(`start_lab.py exited (${code}) before the server answered:\n${stderr}`));
      });
    });
    return new RunningLab(key, info, child);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>(resolve => this.child.once('exit', () => resolve()));
    this.child.stdin!.end();
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  }
}

/** The worker's servers: one at a time, for the test file it is running. */
class LabPool {
  private current: RunningLab | null = null;

  async get(key: string, options: BifrostWorkerOptions, logName: string): Promise<LabServer> {
    if (this.current?.key !== key) {
      await this.current?.stop();
      this.current = null;
      this.current = await RunningLab.start(key, options, logName);
    }
    return this.current.info;
  }

  async close(): Promise<void> {
    await this.current?.stop();
    this.current = null;
  }
}

/** A requirement line's project name, canonical (PEP 503). */
export function canonicalName(line: string): string {
  const name = line.trim().match(/^[A-Za-z0-9._-]+/)?.[0] ?? line;
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

export interface PackagesState {
  workspace: string;
  requirements: string[];
  content: string;
  hash: string;
  locked?: Record<string, string>;
  saved_error?: string | null;
}

export interface Revision {
  id: number;
  version: number;
  source: string;
  content: string;
  previous_content: string;
}

/** The packages API of one server, called the way a script calls it (token, no stream). */
export class PackagesAPI {
  constructor(private readonly context: APIRequestContext) {}

  async state(): Promise<PackagesState> {
    const response = await this.context.get('api/packages');
    expect(response.status(), await response.text()).toBe(200);
    return response.json();
  }

  async requirements(): Promise<string[]> {
    return (await this.state()).requirements;
  }

  async post(route: string, body: unknown): Promise<{ status: number; body: any }> {
    const response = await this.context.post(`api/packages/${route}`, {
      data: body,
      headers: { Accept: 'application/json' },
      timeout: 120_000
    });
    return { status: response.status(), body: await response.json().catch(() => null) };
  }

  /** Install and save; the answer must be 200. */
  async install(packages: string[]): Promise<PackagesState> {
    const { status, body } = await this.post('install', { packages });
    expect(status, JSON.stringify(body)).toBe(200);
    return body;
  }

  async uninstall(names: string[]): Promise<PackagesState> {
    const { status, body } = await this.post('uninstall', { packages: names });
    expect(status, JSON.stringify(body)).toBe(200);
    return body;
  }

  /** No requirements saved (a new revision only when there were some). */
  async clear(): Promise<void> {
    const lines = await this.requirements();
    if (lines.length) await this.uninstall(lines.map(canonicalName));
  }

  async history(limit = 100): Promise<Revision[]> {
    const response = await this.context.get(`api/packages/history?limit=${limit}`);
    expect(response.status()).toBe(200);
    return (await response.json()).revisions;
  }
}

type TestFixtures = {
  lab: LabServer;
  api: PackagesAPI;
  /** Lab opened at `lab?reset` with the token, once `window.jupyterapp.restored`. */
  jlab: Page;
};
type WorkerFixtures = BifrostWorkerOptions & { labPool: LabPool };

export const test = base.extend<TestFixtures, WorkerFixtures>({
  basePath: ['/', { scope: 'worker', option: true }],
  readOnly: [false, { scope: 'worker', option: true }],
  seed: [[], { scope: 'worker', option: true }],

  labPool: [
    async ({}, use) => {
      const pool = new LabPool();
      await use(pool);
      await pool.close();
    },
    { scope: 'worker', timeout: START_TIMEOUT_MS + 60_000 }
  ],

  lab: async ({ labPool, basePath, readOnly, seed }, use, testInfo) => {
    const options = { basePath, readOnly, seed };
    const file = path.basename(testInfo.file, '.spec.ts');
    const key = JSON.stringify([testInfo.file, options]);
    const logName = `${testInfo.project.name}-${file}-${process.pid}.log`;
    testInfo.setTimeout(testInfo.timeout + START_TIMEOUT_MS);
    const server = await labPool.get(key, options, logName);
    await use(server);
    if (testInfo.status !== testInfo.expectedStatus && fs.existsSync(server.log)) {
      await testInfo.attach('jupyter-lab.log', { path: server.log, contentType: 'text/plain' });
    }
  },

  api: async ({ lab }, use) => {
    const context = await playwrightRequest.newContext({
      baseURL: `${lab.url}${lab.base_url}`,
      extraHTTPHeaders: { Authorization: `token ${lab.token}` }
    });
    await use(new PackagesAPI(context));
    await context.dispose();
  },

  page: async ({ page, lab }, use, testInfo) => {
    const outside: string[] = [];
    const errors: string[] = [];
    const server = new URL(lab.url);
    page.on('request', request => {
      const url = new URL(request.url());
      if (url.host === server.host && !url.pathname.startsWith(lab.base_url)) {
        outside.push(`${request.method()} ${url.pathname}`);
      }
    });
    page.on('pageerror', error => errors.push(String(error.stack || error)));
    await use(page);
    if (errors.length) {
      const text = errors.join('\n\n');
      await testInfo.attach('page-errors.txt', { body: text, contentType: 'text/plain' });
      // Also for passing tests, where a report's attachments are easy to miss.
      fs.mkdirSync(path.join(UI_TESTS, 'test-results'), { recursive: true });
      fs.appendFileSync(
        path.join(UI_TESTS, 'test-results', 'page-errors.txt'),
        `== [${testInfo.project.name}] ${testInfo.title}\n${text}\n\n`
      );
    }
    expect(outside, `requests outside the base URL ${lab.base_url}`).toEqual([]);
  },

  jlab: async ({ page, lab }, use) => {
    await openLab(page, lab);
    await use(page);
  }
});

export { expect };

/** Open JupyterLab (a reset layout) and wait until its plugins are active. */
export async function openLab(page: Page, lab: LabServer): Promise<void> {
  await page.goto(`${lab.url}${lab.base_url}lab?reset&token=${lab.token}`);
  await page.waitForFunction(() => !!(window as any).jupyterapp, undefined, { timeout: 60_000 });
  await page.evaluate(() => (window as any).jupyterapp.restored);
}

/** Run the panel's command, as the palette, the menu and the launcher do. */
export async function openPanel(page: Page): Promise<Locator> {
  await page.evaluate(id => (window as any).jupyterapp.commands.execute(id), COMMAND);
  const panel = page.locator(`#${PANEL_ID}`);
  await expect(panel).toBeVisible();
  return panel;
}

/** The row of a saved requirement, by canonical name. */
export function row(scope: Page | Locator, name: string): Locator {
  return scope.locator(`[data-requirement="${name}"]`);
}

/** Open every closed `<details>` around `target` by clicking its summary, as a user does. */
export async function reveal(target: Locator): Promise<void> {
  await expect(target).toBeAttached();
  // Document order: the outermost first, whose summary is the one a user can see.
  const closed = target.locator('xpath=ancestor::details[not(@open)]');
  for (let i = 0; i < 5 && (await closed.count()) > 0; i++) {
    await closed.first().locator('xpath=./summary').click();
  }
  await target.scrollIntoViewIfNeeded();
}

/** Click a change button and accept its JupyterLab confirm dialog if one comes up. */
export async function clickAndConfirm(
  page: Page,
  button: Locator,
  accept: string | RegExp,
  done: () => Promise<boolean>
): Promise<void> {
  await button.click();
  const dialog = page.locator('.jp-Dialog');
  await expect
    .poll(async () => (await dialog.isVisible()) || (await done()), {
      message: 'a confirm dialog or the change itself'
    })
    .toBe(true);
  if (await dialog.isVisible()) {
    await dialog.getByRole('button', { name: accept }).click();
    await expect(dialog).toBeHidden();
  }
}

/** Save a screenshot under test-results/screenshots/ (every run) and attach it. */
export async function keepScreenshot(target: Page | Locator, testInfo: TestInfo, name: string) {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}-${testInfo.project.name}.png`);
  await target.screenshot({ path: file });
  await testInfo.attach(`${name}.png`, { path: file, contentType: 'image/png' });
  return file;
}
