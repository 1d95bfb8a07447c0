/**
 * Install from the panel with the installer's output live in the log, a refused spec, and
 * remove: each checked in the panel and in the API.
 */
import { clickAndConfirm, expect, openPanel, reveal, row, test } from './fixtures';

test.beforeEach(async ({ api }) => {
  await api.clear();
});

test('install from the panel: live installer log, then the saved row', async ({ api, jlab }) => {
  const panel = await openPanel(jlab);
  // role="log" inside a collapsible <details>: attached even while collapsed (hidden).
  const log = panel.getByRole('log', { includeHidden: true });
  await expect(log).toBeAttached();

  // A timeline of what the panel showed, taken at every DOM change: the log's output must
  // come before the install's result, not all at once at the end.
  await jlab.evaluate(() => {
    const w = window as any;
    w.bifrostTimeline = [] as Array<{ output: boolean; row: boolean }>;
    const root = document.getElementById('bifrost-packages')!;
    // An installer line (uv's "Resolved ...", "Installed ...", " + bf-tools==1.0"), not a
    // placeholder the panel shows before any output.
    const snap = () =>
      w.bifrostTimeline.push({
        output: /Resolved|Installed|bf-tools/.test(
          root.querySelector('[role="log"]')?.textContent ?? ''
        ),
        row: !!root.querySelector('[data-requirement="bf-tools"]')
      });
    snap();
    new MutationObserver(snap).observe(root, { subtree: true, childList: true, characterData: true });
  });

  // bf_tools's canonical name is bf-tools: the row is keyed by it.
  await panel.getByLabel('Package specs to install').fill('bf_tools==1.0');
  await panel.getByRole('button', { name: 'Install' }).click();

  await expect(log).toContainText('bf-tools==1.0'); // uv's " + bf-tools==1.0"
  const saved = row(panel, 'bf-tools');
  await expect(saved).toBeVisible();
  await expect(saved).toContainText('bf-tools==1.0');
  expect(await api.requirements()).toEqual(['bf-tools==1.0']);

  const timeline: Array<{ output: boolean; row: boolean }> = await jlab.evaluate(
    () => (window as any).bifrostTimeline
  );
  const firstOutput = timeline.findIndex(s => s.output);
  const firstRow = timeline.findIndex(s => s.row);
  expect(firstOutput, 'installer output shown at some point').toBeGreaterThanOrEqual(0);
  expect(timeline[firstOutput].row, 'output shown while the install was running').toBe(false);
  expect(firstOutput).toBeLessThan(firstRow);

  await reveal(log);
  await expect(panel.getByRole('log', { name: 'Installer log' })).toBeVisible();
});

test("a refused spec and a typo show the server's one line and save nothing", async ({ api, jlab }) => {
  await api.install(['bfdemo==1.0']);
  const before = await api.state();
  const revisions = (await api.history()).length;

  const panel = await openPanel(jlab);
  await expect(row(panel, 'bfdemo')).toBeVisible();
  // Quoted: one spec, as the contract allows ("requests[socks]>=2").
  await panel.getByLabel('Package specs to install').fill('"not a spec!!"');
  await panel.getByRole('button', { name: 'Install' }).click();

  // The server's line, as the magic and `jupyter bifrost` say it.
  const refusal = jlab
    .getByText(/invalid requirement 'not a spec!!': not a valid requirement.*; nothing was saved/)
    .first();
  await expect(refusal).toBeVisible();

  // A typo: the server's one line in the panel and its notification (as the magic and the
  // CLI say it); uv's output ("Using CPython …") only behind "Show details".
  await panel.getByLabel('Package specs to install').fill('reqests');
  await panel.getByRole('button', { name: 'Install' }).click();
  const typo = "'reqests' not found in the package index; nothing was saved";
  const error = panel.locator('[data-bifrost="error"]');
  await expect(error.locator('p')).toHaveText(typo);
  await expect(error.locator('details summary')).toHaveText('Show details');
  const toast = jlab.locator('.Toastify__toast').filter({ hasText: typo });
  await expect(toast).toBeVisible();
  await expect(toast).not.toContainText('Using CPython');

  const after = await api.state();
  expect(after.hash).toBe(before.hash);
  expect(after.requirements).toEqual(['bfdemo==1.0']);
  expect((await api.history()).length).toBe(revisions);
  await expect(row(panel, 'bfdemo')).toBeVisible();
  await expect(panel.locator('[data-requirement]')).toHaveCount(1);
});

test('remove a row: gone from the panel and the API', async ({ api, jlab }) => {
  await api.install(['bfdemo==1.0', 'bfdep==1.0']);
  const panel = await openPanel(jlab);
  const demo = row(panel, 'bfdemo');
  await expect(demo).toBeVisible();

  await clickAndConfirm(jlab, demo.getByRole('button', { name: 'Remove' }), 'Remove', async () =>
    (await demo.count()) === 0
  );
  await expect(demo).toHaveCount(0);
  await expect(row(panel, 'bfdep')).toBeVisible();
  await expect.poll(() => api.requirements()).toEqual(['bfdep==1.0']);
});
