/**
 * The panel is found by its command, shows what is saved, and follows changes made
 * elsewhere without a reload.
 */
import { COMMAND, expect, keepScreenshot, openPanel, row, test } from './fixtures';

test.beforeEach(async ({ api }) => {
  await api.clear();
});

test('the command opens the Packages panel in the left sidebar', async ({ jlab }, testInfo) => {
  const command = await jlab.evaluate(id => {
    const commands = (window as any).jupyterapp.commands;
    return { exists: commands.hasCommand(id), label: commands.hasCommand(id) ? commands.label(id) : null };
  }, COMMAND);
  expect(command).toEqual({ exists: true, label: 'Packages' });

  const panel = await openPanel(jlab);
  await expect(jlab.locator('#jp-left-stack').locator('#bifrost-packages')).toBeVisible();
  await expect(panel.getByLabel('Package specs to install')).toBeVisible();
  await expect(panel.getByRole('button', { name: 'Install' })).toBeVisible();
  await keepScreenshot(panel, testInfo, 'panel-light-empty');
});

test('a requirement saved through the API appears', async ({ api, jlab }, testInfo) => {
  await api.install(['bfdemo==1.0']);
  const panel = await openPanel(jlab);
  const saved = row(panel, 'bfdemo');
  await expect(saved).toBeVisible();
  await expect(saved).toContainText('bfdemo==1.0');
  await keepScreenshot(panel, testInfo, 'panel-light');
});

test('a row shows the version locked for it', async ({ api, jlab }) => {
  // bfdemo>=1 resolves to 2.0, the newest the wheelhouse has: the lock says which.
  const state = await api.install(['bfdemo>=1']);
  const panel = await openPanel(jlab);
  const saved = row(panel, 'bfdemo');
  await expect(saved).toContainText('bfdemo>=1');
  const locked = (await api.state()).locked;
  expect(locked, 'GET api/packages carries `locked` (server side of the contract)').toBeTruthy();
  expect(locked!['bfdemo']).toBe('2.0');
  await expect(saved).toContainText('2.0');
  expect(state.requirements).toEqual(['bfdemo>=1']);
});

test('a change made through the API appears without a reload', async ({ api, jlab }, testInfo) => {
  const panel = await openPanel(jlab);
  await expect(row(panel, 'bfapp')).toHaveCount(0);
  await jlab.evaluate(() => ((window as any).bifrostTestMarker = 'same page'));

  const saved = Date.now();
  await api.install(['bfapp==1.0']);
  await expect(row(panel, 'bfapp')).toBeVisible();
  // jupyter_events make it near-instant; the 5 s status poll is the backstop.
  testInfo.annotations.push({ type: 'shown after', description: `${Date.now() - saved} ms` });
  await expect(row(panel, 'bfapp')).toContainText('bfapp==1.0');

  await api.uninstall(['bfapp']);
  await expect(row(panel, 'bfapp')).toHaveCount(0);
  expect(await jlab.evaluate(() => (window as any).bifrostTestMarker)).toBe('same page');
});
