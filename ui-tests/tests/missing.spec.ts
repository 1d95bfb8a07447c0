/**
 * A missing-import output in a notebook someone else wrote (issue 22): whatever the output
 * carries, a click installs only what the server's own module → distribution table names for
 * the module, and only after a dialog that names it and the workspace; in an untrusted
 * notebook the output has no button at all. The notebook file is written straight into the
 * server's root, as a shared or downloaded notebook arrives: no signature, so untrusted.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Page } from '@playwright/test';
import { expect, keepScreenshot, openLab, openPanel, test, type LabServer } from './fixtures';

const MIME = 'application/vnd.bifrost.missing-import+json';

/** One cell whose outputs say `module` is missing and carry a forged distribution. */
function cell(module: string, carried: string, line: string) {
  return {
    cell_type: 'code',
    execution_count: 1,
    id: `c${Math.random().toString(16).slice(2, 10)}`,
    metadata: {},
    source: [`import ${module}`],
    outputs: [
      {
        output_type: 'error',
        ename: 'ModuleNotFoundError',
        evalue: `No module named '${module}'`,
        traceback: [`ModuleNotFoundError: No module named '${module}'`]
      },
      {
        output_type: 'display_data',
        metadata: {},
        data: {
          'text/plain': line,
          [MIME]: { module, distribution: carried, command: `%bifrost install ${carried}` }
        }
      }
    ]
  };
}

const MARKUP = '<img src=x onerror="window.bifrostPwned=1">';

function writeNotebook(lab: LabServer, name: string): void {
  const notebook = {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {
      kernelspec: { name: 'python3', display_name: 'Python 3', language: 'python' }
    },
    cells: [
      cell('sklearn', 'bfapp', "No module named 'sklearn'"),
      cell('bfdemo', 'bfapp', 'bifrost: to install it for good: %bifrost install bfapp'),
      {
        ...cell('bfdemo', 'bfapp', `<b>bold</b> ${MARKUP}`),
        outputs: [
          {
            output_type: 'display_data',
            metadata: {},
            data: {
              'text/plain': `<b>bold</b> ${MARKUP}`,
              [MIME]: { module: MARKUP, distribution: 'bfapp', command: MARKUP }
            }
          }
        ]
      }
    ]
  };
  fs.writeFileSync(path.join(lab.root, 'root', name), JSON.stringify(notebook));
}

async function openNotebook(page: Page, name: string) {
  await page.evaluate(
    file => (window as any).jupyterapp.commands.execute('docmanager:open', { path: file }),
    name
  );
  const notebook = page.locator('.jp-NotebookPanel:visible .jp-Notebook');
  await expect(notebook.locator('.jp-OutputArea-output').first()).toBeVisible();
  return notebook;
}

test.beforeEach(async ({ api }) => {
  await api.clear();
});

test('an untrusted notebook: the output is a line of text, with no button, and no offer', async ({
  api,
  lab,
  page
}, testInfo) => {
  writeNotebook(lab, 'untrusted.ipynb');
  await openLab(page, lab);
  const notebook = await openNotebook(page, 'untrusted.ipynb');
  await expect(notebook).toContainText('bifrost: to install it for good: %bifrost install bfapp');
  await expect(notebook.locator('.jp-OutputArea').getByRole('button')).toHaveCount(0);

  const panel = await openPanel(page);
  await expect(panel.locator('[data-bifrost="status"]')).toContainText('default');
  await expect(panel.locator('[data-bifrost="missing"]')).toHaveCount(0);
  await expect(panel).not.toContainText('bfapp');
  await keepScreenshot(page, testInfo, 'missing-untrusted');
  expect(await api.requirements()).toEqual([]);
});

test('a trusted notebook: the button installs the server table’s name, after a dialog', async ({
  api,
  lab,
  page
}, testInfo) => {
  writeNotebook(lab, 'trusted.ipynb');
  await openLab(page, lab);
  const notebook = await openNotebook(page, 'trusted.ipynb');
  // Not awaited: the command resolves only once its dialog is answered.
  await page.evaluate(() => {
    void (window as any).jupyterapp.commands.execute('notebook:trust');
  });
  const trust = page.locator('.jp-Dialog');
  await trust.getByRole('button', { name: 'Confirm Trusting this notebook' }).click();
  await expect(trust).toBeHidden();

  // sklearn is scikit-learn by the server's table, whatever the output carries.
  const outputs = notebook.locator('.jp-bifrost-missing-import');
  const sklearn = outputs.nth(0);
  await expect(sklearn.getByRole('button')).toHaveText('Install scikit-learn…');
  await expect(notebook.locator('.jp-OutputArea').getByRole('button', { name: /bfapp/ })).toHaveCount(0);

  await sklearn.getByRole('button').click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText('scikit-learn');
  await expect(dialog).toContainText("workspace 'default'");
  await expect(dialog).not.toContainText('bfapp');
  await keepScreenshot(page, testInfo, 'missing-confirm');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await expect(dialog).toBeHidden();
  expect(await api.requirements()).toEqual([]);

  // The panel offers the same server-computed names, never the carried one.
  const panel = await openPanel(page);
  const offer = panel.locator('[data-bifrost="missing"]');
  await expect(offer).toContainText('scikit-learn');
  await expect(offer).toContainText('bfdemo');
  await expect(offer).not.toContainText('bfapp');

  // Confirmed: exactly the table's name is saved (bfdemo maps to itself), nothing else.
  await outputs.nth(1).getByRole('button', { name: 'Install bfdemo…' }).click();
  await expect(dialog).toContainText('bfdemo');
  await dialog.getByRole('button', { name: 'Install', exact: true }).click();
  await expect(outputs.nth(1).getByRole('button', { name: 'Installed bfdemo' })).toBeDisabled();
  expect(await api.requirements()).toEqual(['bfdemo']);

  // Markup in the module name: shown as text, no element made of it, no button for it.
  const markup = outputs.nth(2);
  await expect(markup).toContainText('<b>bold</b>');
  await expect(markup.locator('b, img')).toHaveCount(0);
  await expect(markup.getByRole('button')).toHaveCount(0);
  expect(await page.evaluate(() => (window as any).bifrostPwned)).toBeUndefined();
});
