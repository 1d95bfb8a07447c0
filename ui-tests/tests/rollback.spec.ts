/** Roll back from the history through JupyterLab's confirm dialog. */
import { expect, openPanel, reveal, row, test } from './fixtures';

test('roll back to an earlier revision through the dialog', async ({ api, jlab }) => {
  await api.clear();
  await api.install(['bfdemo==1.0']);
  const [earlier] = await api.history(1);
  expect(earlier.content).toBe('bfdemo==1.0\n');
  await api.install(['bfdemo==2.0', 'bfapp==1.0']);

  const panel = await openPanel(jlab);
  await expect(row(panel, 'bfapp')).toBeVisible();
  await expect(row(panel, 'bfdemo')).toContainText('bfdemo==2.0');

  const revision = panel.locator(`[data-revision="${earlier.id}"]`);
  await reveal(revision);
  await revision.getByRole('button', { name: 'Roll back' }).click();

  const dialog = jlab.getByRole('dialog');
  await expect(dialog).toBeVisible();
  await dialog.getByRole('button', { name: 'Roll back' }).click();
  await expect(dialog).toBeHidden();

  await expect(row(panel, 'bfapp')).toHaveCount(0);
  await expect(row(panel, 'bfdemo')).toContainText('bfdemo==1.0');
  expect(await api.requirements()).toEqual(['bfdemo==1.0']);
  const [newest] = await api.history(1);
  expect(newest.source).toContain(`rollback to revision ${earlier.id}`);
  // The new revision is listed too, without a reload.
  await expect(panel.locator(`[data-revision="${newest.id}"]`)).toBeAttached();
});
