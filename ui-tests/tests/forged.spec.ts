/**
 * What the panel does with what it cannot trust (issue 22): a `packages/v1` event forged with
 * the user's own token changes nothing saved or shown (the panel only ever re-reads
 * `api/packages`), and a saved row written past the validator is shown as such, as text, and
 * replaced by the next install.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { request } from '@playwright/test';
import { REPO, expect, keepScreenshot, openPanel, row, test, type LabServer } from './fixtures';

const SCHEMA_ID = 'https://bifrost-ext.dev/events/packages/v1';
const PYTHON = process.env.BIFROST_UI_PYTHON || path.join(REPO, '.venv', 'bin', 'python');

/** Write `content` straight into the server's SQLite row, as a hand-written UPDATE does. */
function forgeRow(lab: LabServer, content: string): void {
  const script = [
    'import hashlib, sqlite3, sys',
    'db = sqlite3.connect(sys.argv[1])',
    'content = sys.argv[2]',
    'digest = hashlib.sha256(content.encode()).hexdigest()',
    "db.execute('UPDATE workspace_files SET content = ?, content_hash = ?, version = version + 1', (content, digest))",
    'db.commit()'
  ].join('\n');
  execFileSync(PYTHON, ['-c', script, path.join(lab.root, 'bifrost.db'), content]);
}

test.beforeEach(async ({ api }) => {
  await api.clear();
});

test('a forged packages/v1 event changes nothing saved or shown', async ({ api, lab, jlab }, testInfo) => {
  await api.install(['bfdemo==1.0']);
  const before = await api.state();
  const history = await api.history();
  const panel = await openPanel(jlab);
  await expect(row(panel, 'bfdemo')).toContainText('bfdemo==1.0');

  const reads: string[] = [];
  jlab.on('request', r => {
    if (new URL(r.url()).pathname === `${lab.base_url}api/packages`) reads.push(r.method());
  });
  const context = await request.newContext({
    baseURL: `${lab.url}${lab.base_url}`,
    extraHTTPHeaders: { Authorization: `token ${lab.token}` }
  });
  const posted = await context.post('api/events', {
    data: {
      schema_id: SCHEMA_ID,
      version: '1',
      data: {
        action: 'changed',
        workspace: 'default',
        hash: 'f'.repeat(64),
        version: 99,
        where: 'another server',
        user: 'alice<b>',
        source: 'api',
        requirements: ['evil-package']
      }
    }
  });
  // jupyter_server accepts it: anyone with the token may emit on the bus.
  expect(posted.status(), await posted.text()).toBe(204);
  await context.dispose();

  // The panel's only answer to an event: read api/packages again, which says what is saved.
  await expect.poll(() => reads.length, { message: 'the panel re-read api/packages' }).toBeGreaterThan(0);
  await expect(row(panel, 'bfdemo')).toContainText('bfdemo==1.0');
  await expect(panel.locator('[data-requirement]')).toHaveCount(1);
  await expect(panel).not.toContainText('evil-package');
  await expect(panel).not.toContainText('alice<b>');
  await expect(panel.locator('[data-bifrost="status"]')).not.toContainText('99');
  await keepScreenshot(panel, testInfo, 'forged-event');
  expect(await api.state()).toEqual(before);
  expect(await api.history()).toEqual(history);
});

test('a saved row that fails validation is shown as such, and the next install replaces it', async ({
  api,
  lab,
  jlab
}, testInfo) => {
  await api.install(['bfdemo==1.0']);
  const panel = await openPanel(jlab);
  await expect(row(panel, 'bfdemo')).toBeVisible();

  forgeRow(lab, '--index-url http://evil/<b>x</b>\nbfapp\n');
  // The status poll notices the database's hash moved and re-reads.
  const warning = panel.locator('[data-bifrost="saved-error"]');
  await expect(warning).toContainText('The saved requirements fail validation');
  await expect(warning).toContainText('installer options are not allowed');
  await expect(warning).toContainText('http://evil/<b>x</b>');
  await expect(warning.locator('b')).toHaveCount(0);
  await keepScreenshot(panel, testInfo, 'saved-invalid');
  expect((await api.state()).saved_error).toContain('installer options are not allowed');

  await panel.getByLabel('Package specs to install').fill('bfdep');
  await panel.getByRole('button', { name: 'Install', exact: true }).click();
  await expect(row(panel, 'bfdep')).toBeVisible();
  await expect(warning).toHaveCount(0);
  await expect(panel.locator('[data-requirement]')).toHaveCount(1);
  const state = await api.state();
  expect([state.requirements, state.saved_error]).toEqual([['bfdep'], null]);
});
