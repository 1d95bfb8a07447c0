/** Export: the requirements file offered as a download, its text shown too. */
import * as fs from 'node:fs';
import { expect, openPanel, row, test } from './fixtures';

test('export the requirements: the download carries the saved line', async ({ api, jlab }) => {
  await api.clear();
  await api.install(['bfdemo==1.0']);
  const panel = await openPanel(jlab);
  await expect(row(panel, 'bfdemo')).toBeVisible();

  const download = jlab.waitForEvent('download');
  await panel.getByRole('button', { name: 'Export' }).click();
  const choice = jlab
    .getByRole('menuitem', { name: /requirements/i })
    .or(jlab.getByRole('option', { name: /requirements/i }))
    .or(jlab.getByRole('button', { name: /requirements/i }));
  await choice.first().click();

  const file = await download;
  expect(file.suggestedFilename()).toBe('requirements.txt');
  const content = fs.readFileSync(await file.path(), 'utf8');
  expect(content).toContain('bfdemo==1.0');

  const dialog = jlab.getByRole('dialog');
  await expect(dialog).toBeVisible();
  await expect(dialog).toContainText('bfdemo==1.0');
});
