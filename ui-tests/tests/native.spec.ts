/**
 * Issue 26's panel: search the test index by prefix and pick a version, change a version from
 * the index's list, the dependency tree under a requirement, sections that collapse, ten
 * compact rows at 1440 × 900, one notification per failure, markup shown as text, and the
 * panel in Notebook 7.
 */
import { expect, keepScreenshot, openPanel, row, test } from './fixtures';

test.use({ viewport: { width: 1440, height: 900 } });

test.beforeEach(async ({ api }) => {
  await api.clear();
});

test('search by prefix lists names, then versions newest first, yanked and pre-release marked', async ({
  api,
  jlab
}, testInfo) => {
  const panel = await openPanel(jlab);
  const box = panel.getByLabel('Package specs to install');
  await box.fill('bfd');
  const names = panel.getByRole('listbox', { name: /Projects in/ });
  await expect(names.getByRole('option')).toHaveText([/bfdemo/, /bfdep/]);
  await keepScreenshot(panel, testInfo, 'panel-search-list');

  await names.getByRole('option', { name: 'bfdemo' }).click();
  const versions = panel.getByRole('listbox', { name: 'Versions of bfdemo' });
  await expect(versions.locator('[data-version]:not([data-version=""])')).toHaveText([
    /^3\.0rc1/,
    /^2\.0/,
    /^1\.0/,
    /^0\.9/
  ]);
  await expect(versions.locator('[data-version="3.0rc1"] [data-bifrost="prerelease"]')).toBeVisible();
  // The yank reason is markup: it must read as text, never become elements.
  const yanked = versions.locator('[data-version="0.9"] [data-bifrost="yanked"]');
  await expect(yanked).toHaveText('yanked: <b>broken</b> <img src=x onerror=alert(1)>');
  await expect(versions.locator('b, img')).toHaveCount(0);
  await keepScreenshot(panel, testInfo, 'panel-version-list');

  // Install picked from the list.
  await versions.locator('[data-version="1.0"]').click();
  await expect(box).toHaveValue('bfdemo==1.0');
  await panel.getByRole('button', { name: 'Install', exact: true }).click();
  await expect(row(panel, 'bfdemo')).toContainText('bfdemo==1.0');
  await expect.poll(() => api.requirements()).toEqual(['bfdemo==1.0']);
});

test('a name the index does not have says so, with close names', async ({ jlab }) => {
  const panel = await openPanel(jlab);
  await panel.getByLabel('Package specs to install').fill('bfdemx');
  const note = panel.locator('[data-bifrost="not-in-index"]').last();
  await expect(note).toContainText('not in the index');
  await expect(panel.getByRole('option', { name: /bfdemo/ })).toBeVisible();
});

test('change version opens the versions of the index, the locked one marked', async ({ api, jlab }) => {
  await api.install(['bfdemo==1.0']);
  const panel = await openPanel(jlab);
  const saved = row(panel, 'bfdemo');
  await saved.getByRole('button', { name: 'Change version' }).click();
  const dialog = jlab.locator('.jp-Dialog');
  const versions = dialog.getByRole('listbox', { name: 'Versions of bfdemo' });
  await expect(versions.locator('[data-version="1.0"] [data-bifrost="locked-version"]')).toHaveText('locked');
  await expect(dialog.getByRole('textbox')).toHaveCount(0); // a list, not a free-text field
  await versions.locator('[data-version="2.0"]').click();
  await dialog.getByRole('button', { name: 'Install' }).click();
  await expect(saved.locator('[data-bifrost="locked"]')).toHaveText('2.0');
  await expect.poll(() => api.requirements()).toEqual(['bfdemo==2.0']);
});

test('a dependency is shown under the requirement that pulled it in, not as a row', async ({
  api,
  jlab
}, testInfo) => {
  await api.install(['bfapp==1.0']);
  const panel = await openPanel(jlab);
  const app = row(panel, 'bfapp');
  await expect(app).toBeVisible();
  await expect(panel.locator('[data-dependency="bfdep"]')).toHaveCount(0);
  await app.getByRole('button', { name: 'Show dependencies' }).click();
  const dep = panel.locator('[data-dependency="bfdep"]');
  await expect(dep).toContainText('bfdep');
  await expect(dep).toContainText('1.0');
  // Only top-level rows are editable.
  await expect(dep.getByRole('button', { name: /Remove|Upgrade|Change version/ })).toHaveCount(0);
  await expect(panel.locator('[data-requirement]')).toHaveCount(1);
  await keepScreenshot(panel, testInfo, 'panel-tree');
});

test('a section collapses and opens again', async ({ api, jlab }) => {
  await api.install(['bfdemo==1.0']);
  const panel = await openPanel(jlab);
  const title = panel.locator('.jp-AccordionPanel-title', { hasText: 'History' });
  const history = panel.locator('[data-section="history"]');
  await expect(history).toBeVisible();
  await title.click();
  await expect(history).toBeHidden();
  await title.click();
  await expect(history).toBeVisible();
  await expect(history.locator('[data-revision]').first()).toBeVisible();
});

test('ten requirements and the History header fit at 1440 × 900 without scrolling', async ({
  api,
  jlab
}, testInfo) => {
  const specs = ['bfdemo==1.0', 'bfdep==1.0', 'bfapp==1.0', 'bf_tools==1.0'];
  await api.install(specs);
  const panel = await openPanel(jlab);
  await expect(panel.locator('[data-requirement]')).toHaveCount(4);
  // Six more lines of the same height: the windowed list is 24 px per line.
  const installed = panel.locator('[data-section="installed"]');
  const line = await panel.locator('[data-requirement]').first().boundingBox();
  expect(line!.height).toBeLessThanOrEqual(26);
  const box = await installed.boundingBox();
  expect(box!.height, 'room for ten lines').toBeGreaterThanOrEqual(10 * line!.height);
  const title = panel.locator('.jp-AccordionPanel-title', { hasText: 'History' });
  const titleBox = await title.boundingBox();
  expect(titleBox!.y + titleBox!.height).toBeLessThanOrEqual(900);
  await keepScreenshot(jlab, testInfo, 'panel-light-1440');
});

test('a failure shows one notification with its log, updated rather than stacked', async ({ jlab }, testInfo) => {
  const panel = await openPanel(jlab);
  const box = panel.getByLabel('Package specs to install');
  for (let i = 0; i < 2; i++) {
    await box.fill('nosuchpackage==1.0');
    await panel.getByRole('button', { name: 'Install', exact: true }).click();
    await expect(panel.locator('[data-bifrost="error"]')).toBeVisible();
    await expect(panel.locator('[data-bifrost="busy"]')).toHaveCount(0);
  }
  const toasts = jlab.locator('.Toastify__toast');
  await expect(toasts).toHaveCount(1);
  await keepScreenshot(jlab, testInfo, 'panel-error');
  await toasts.getByRole('button', { name: 'Show log' }).click();
  await expect(panel.getByRole('log', { name: 'Installer log' })).toBeVisible();
});

test('the panel in Notebook 7, by its command, with its caption', async ({ lab, page }) => {
  await page.goto(`${lab.url}${lab.base_url}tree?token=${lab.token}`);
  await page.waitForFunction(() => !!(window as any).jupyterapp, undefined, { timeout: 60_000 });
  await page.evaluate(() => (window as any).jupyterapp.restored);
  const caption = await page.evaluate(() =>
    (window as any).jupyterapp.commands.caption('bifrost:open-packages')
  );
  expect(caption).toBe("Python packages of this workspace's kernels");
  const panel = await openPanel(page);
  await expect(panel.getByLabel('Package specs to install')).toBeVisible();
});

test("Notebook 7's notebook view: View → Left Sidebar shows the panel, following that notebook", async ({
  lab,
  page
}, testInfo) => {
  const name = 'seven <b>x.ipynb'; // markup in the notebook's name (no "/": a path): text
  const created = await page.request.put(
    `${lab.url}${lab.base_url}api/contents/${encodeURIComponent(name)}`,
    {
      headers: { Authorization: `token ${lab.token}` },
      data: {
        type: 'notebook',
        format: 'json',
        content: {
          cells: [],
          metadata: { kernelspec: { name: 'python3', display_name: 'Python 3', language: 'python' } },
          nbformat: 4,
          nbformat_minor: 5
        }
      }
    }
  );
  expect(created.status()).toBe(201);
  await page.goto(`${lab.url}${lab.base_url}notebooks/${encodeURIComponent(name)}?token=${lab.token}`);
  await page.waitForFunction(() => !!(window as any).jupyterapp, undefined, { timeout: 60_000 });
  await page.evaluate(() => (window as any).jupyterapp.restored);
  await page.locator('.lm-MenuBar-item', { hasText: 'View' }).click();
  await page.locator('.lm-Menu-item', { hasText: 'Left Sidebar' }).click();
  await page.locator('.lm-Menu-item', { hasText: "Show Python packages of this workspace's kernels" }).click();
  const panel = page.locator('#bifrost-packages');
  await expect(panel).toBeVisible();
  const kernel = panel.locator('[data-bifrost="kernel"]');
  await expect(kernel).toHaveText(`Kernel of ${name}`);
  await expect(kernel.locator('b')).toHaveCount(0);
  await keepScreenshot(page, testInfo, 'notebook7');
});
