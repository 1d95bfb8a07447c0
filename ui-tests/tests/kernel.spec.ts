/**
 * The active notebook's kernel: the version it has in memory beside the saved one, "restart
 * to use" and Restart kernel. This file's server has the panel's status poll turned off, so
 * every change the panel shows here reached it through the server's event bus.
 */
import { request } from '@playwright/test';
import { clickAndConfirm, expect, keepScreenshot, openLab, openPanel, row, test } from './fixtures';

test.beforeEach(async ({ api, lab }) => {
  await api.clear();
  const context = await request.newContext({
    baseURL: `${lab.url}${lab.base_url}`,
    extraHTTPHeaders: { Authorization: `token ${lab.token}` }
  });
  const saved = await context.put('lab/api/settings/bifrost-ext:plugin', {
    data: { raw: JSON.stringify({ pollInterval: 0 }) }
  });
  expect(saved.status(), await saved.text()).toBe(204);
  await context.dispose();
});

test('a change made through the API reaches the panel by the event bus alone', async ({ api, lab, page }) => {
  await openLab(page, lab);
  const panel = await openPanel(page);
  await expect(panel.locator('[data-bifrost="status"]')).toContainText('default');
  await api.install(['bfapp==1.0']);
  await expect(row(panel, 'bfapp')).toContainText('bfapp==1.0');
});

test('a kernel that runs an older version says restart to use the saved one', async ({ api, lab, page }, testInfo) => {
  await api.install(['bfdemo==1.0']);
  await openLab(page, lab);
  await page.evaluate(() =>
    (window as any).jupyterapp.commands.execute('notebook:create-new', { kernelName: 'python3' })
  );
  const cell = page.locator('.jp-Notebook .jp-Cell .cm-content').first();
  await cell.click();
  await page.keyboard.type('import bfdemo; print(bfdemo.__version__)');
  await page.keyboard.press('Shift+Enter');
  await expect(page.locator('.jp-OutputArea-output').first()).toHaveText('1.0');

  const panel = await openPanel(page);
  const saved = row(panel, 'bfdemo');
  await expect(saved.locator('[data-bifrost="loaded"]')).toHaveText('1.0');
  await expect(saved.locator('[data-bifrost="mismatch"]')).toHaveCount(0);

  await api.install(['bfdemo==2.0']);
  await expect(saved.locator('[data-bifrost="locked"]')).toHaveText('2.0');
  await expect(saved.locator('[data-bifrost="loaded"]')).toHaveText('1.0');
  await expect(saved.locator('[data-bifrost="mismatch"]')).toHaveText('restart to use 2.0');
  await keepScreenshot(panel, testInfo, 'kernel-mismatch');

  const restart = saved.getByRole('button', { name: 'Restart kernel' });
  await clickAndConfirm(page, restart, /^Restart$/, async () =>
    (await saved.locator('[data-bifrost="mismatch"]').count()) === 0
  );
  // A fresh kernel has imported nothing: nothing loaded, nothing stale.
  await expect(saved.locator('[data-bifrost="mismatch"]')).toHaveCount(0);
  await expect(saved.locator('[data-bifrost="loaded"]')).toHaveText('—');
});

test('a module a notebook cannot import is one click away from installed for good', async ({ api, lab, page }, testInfo) => {
  await openLab(page, lab);
  await page.evaluate(() =>
    (window as any).jupyterapp.commands.execute('notebook:create-new', { kernelName: 'python3' })
  );
  const cell = page.locator('.jp-Notebook .jp-Cell .cm-content').first();
  await cell.click();
  await page.keyboard.type('import bfdemo');
  await page.keyboard.press('Shift+Enter');
  const output = page.locator('.jp-bifrost-missing-import');
  await expect(output).toContainText('%bifrost install bfdemo');
  await expect(page.locator('.jp-OutputArea-output')).toContainText(["ModuleNotFoundError"]);

  const panel = await openPanel(page);
  const offer = panel.locator('[data-bifrost="missing"]');
  await expect(offer).toContainText('bfdemo');
  await keepScreenshot(page, testInfo, 'missing-import');

  // A click asks first, naming what it installs and where (issue 22).
  await output.getByRole('button', { name: 'Install bfdemo…' }).click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText("Installing bfdemo saves it to workspace 'default'");
  await dialog.getByRole('button', { name: 'Install', exact: true }).click();
  await expect(row(panel, 'bfdemo')).toBeVisible();
  await expect(output.getByRole('button', { name: 'Installed bfdemo' })).toBeDisabled();
  await expect(offer).toHaveCount(0);
  expect(await api.requirements()).toEqual(['bfdemo']);
});
