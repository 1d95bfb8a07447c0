/**
 * An operator's authorizer refuses `write` on `packages` (ui-tests/readonly_authorizer.py):
 * the panel says so and offers no change; the API refuses one anyway.
 */
import { expect, openPanel, reveal, row, test } from './fixtures';
import type { Locator } from '@playwright/test';

// Saved by the operator's CLI before the server starts: nobody can save one through it.
test.use({ readOnly: true, seed: ['bfdemo==1.0'] });

/** Absent, or present and disabled. */
async function expectNoUse(control: Locator) {
  const count = await control.count();
  for (let i = 0; i < count; i++) await expect(control.nth(i)).toBeDisabled();
}

test('read-only: the banner shows and nothing can be changed', async ({ api, jlab }) => {
  const before = await api.state();
  expect(before.requirements).toEqual(['bfdemo==1.0']);

  const panel = await openPanel(jlab);
  const banner = panel.locator('[data-bifrost="read-only"]');
  await expect(banner).toBeVisible();
  await expect(banner).toContainText(
    "Read-only: your server's authorizer does not allow changes to packages"
  );

  const saved = row(panel, 'bfdemo');
  await expect(saved).toBeVisible();
  await expectNoUse(panel.getByRole('button', { name: 'Install' }));
  await expectNoUse(panel.getByLabel('Package specs to install'));
  for (const name of ['Remove', 'Upgrade', 'Change version']) {
    await expectNoUse(saved.getByRole('button', { name }));
  }
  const revisions = panel.locator('[data-revision]');
  if ((await revisions.count()) > 0) await reveal(revisions.first());
  await expectNoUse(panel.getByRole('button', { name: 'Roll back' }));

  const refused = await api.post('install', { packages: ['bfdep==1.0'] });
  expect(refused.status).toBe(403);
  expect((await api.state()).hash).toBe(before.hash);
  await expect(panel.locator('[data-requirement]')).toHaveCount(1);
});
