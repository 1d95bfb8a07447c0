/**
 * The screenshots of docs/images/panel/ (issue 26): the Packages panel in the right sidebar
 * beside the Extension Manager in the left, light and dark, and at a narrow window. Kept under
 * test-results/screenshots/; copied to the docs by hand when the panel's look changes.
 */
import { expect, keepScreenshot, openPanel, row, test } from './fixtures';

test.beforeEach(async ({ api }) => {
  await api.clear();
  await api.install(['bfdemo==1.0', 'bfapp==1.0']);
});

async function besideExtensionManager(page: import('@playwright/test').Page): Promise<void> {
  await openPanel(page);
  await page.evaluate(() => {
    const app = (window as any).jupyterapp;
    const ours = app.shell.widgets('left').find((w: any) => w.id === 'bifrost-packages');
    app.shell.add(ours, 'right', { rank: 1 });
    app.shell.activateById('bifrost-packages');
    app.shell.activateById('extensionmanager.main-view');
  });
  await expect(page.locator('#bifrost-packages')).toBeVisible();
}

for (const [theme, name] of [
  ['JupyterLab Light', 'light'],
  ['JupyterLab Dark', 'dark']
] as const) {
  test(`beside the Extension Manager, ${name}`, async ({ jlab }, testInfo) => {
    await jlab.setViewportSize({ width: 1440, height: 900 });
    await jlab.evaluate(
      t => (window as any).jupyterapp.commands.execute('apputils:change-theme', { theme: t }),
      theme
    );
    await expect(jlab.locator('body')).toHaveAttribute('data-jp-theme-name', theme);
    await besideExtensionManager(jlab);
    await expect(row(jlab.locator('#bifrost-packages'), 'bfapp')).toBeVisible();
    await keepScreenshot(jlab, testInfo, `beside-extension-manager-${name}`);
  });
}

test('narrow window', async ({ jlab }, testInfo) => {
  await jlab.setViewportSize({ width: 900, height: 700 });
  const panel = await openPanel(jlab);
  await expect(row(panel, 'bfapp')).toBeVisible();
  await keepScreenshot(jlab, testInfo, 'narrow');
});
