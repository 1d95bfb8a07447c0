// The Packages panel: renders a PackagesModel and forwards clicks to the panel's actions.
// Holds no state of its own but the install box's text and whether the export menu is open.

import type { TranslationBundle } from '@jupyterlab/translation';
import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import type { Message } from '@lumino/messaging';
import * as React from 'react';

import type { IPanelActions } from './actions';
import type { IExportFormat, IRevision } from './api';
import type { IRequirementRow, PackagesModel } from './model';
import { diffRequirements, splitSpecs } from './requirements';
import { statusItems } from './status';

/** The sidebar widget: re-renders whenever the model changes, polls only while shown. */
export class PackagesPanel extends ReactWidget {
  constructor(
    private readonly _model: PackagesModel,
    private readonly _actions: IPanelActions,
    private readonly _trans: TranslationBundle
  ) {
    super();
    this.addClass('jp-bifrost-Panel');
  }

  /** Open the installer log and move the focus to it. */
  showLog(): void {
    this._model.setLogOpen(true);
    requestAnimationFrame(() => {
      this.node.querySelector<HTMLElement>('[role="log"]')?.focus();
    });
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    // A layout restored with the panel open shows it without an after-show message.
    if (this.isVisible) {
      this._model.setVisible(true);
    }
  }

  protected onBeforeDetach(msg: Message): void {
    this._model.setVisible(false);
    super.onBeforeDetach(msg);
  }

  protected onAfterShow(): void {
    this._model.setVisible(true);
  }

  protected onAfterHide(): void {
    this._model.setVisible(false);
  }

  protected render(): JSX.Element {
    return (
      <UseSignal signal={this._model.stateChanged}>
        {() => (
          <PanelView
            model={this._model}
            actions={this._actions}
            trans={this._trans}
          />
        )}
      </UseSignal>
    );
  }
}

interface IViewProps {
  model: PackagesModel;
  actions: IPanelActions;
  trans: TranslationBundle;
}

function PanelView({ model, actions, trans }: IViewProps): JSX.Element {
  const busy = model.busy !== null;
  const writable = !model.readOnly;
  return (
    <div className="jp-bifrost-content">
      <header className="jp-bifrost-header">
        <h2 className="jp-bifrost-title">{trans.__('Packages')}</h2>
        <ExportMenu
          formats={model.status?.export_formats ?? []}
          actions={actions}
          trans={trans}
        />
      </header>
      <StatusStrip model={model} trans={trans} />
      {model.readOnly ? (
        <div
          className="jp-bifrost-readonly"
          data-bifrost="read-only"
          role="note"
        >
          {trans.__(
            "Read-only: your server's authorizer does not allow changes to packages"
          )}
        </div>
      ) : (
        <InstallBox actions={actions} trans={trans} disabled={busy} />
      )}
      {writable && (
        <MissingImports model={model} actions={actions} trans={trans} />
      )}
      {model.error && (
        <Alert className="jp-bifrost-error" name="error">
          <p>{model.error.message}</p>
          {model.error.detail && (
            <details>
              <summary>{trans.__('Show details')}</summary>
              <pre>{model.error.detail}</pre>
            </details>
          )}
        </Alert>
      )}
      {model.savedError && (
        <Alert className="jp-bifrost-readonly" name="saved-error">
          {trans.__(
            'The saved requirements fail validation (%1): nothing of them is installed. The next install or rollback replaces them.',
            model.savedError
          )}
        </Alert>
      )}
      {model.loadError && (
        <Alert className="jp-bifrost-error" name="load-error">
          <p>{model.loadError.message}</p>
        </Alert>
      )}
      {model.message && (
        <div className="jp-bifrost-message" data-bifrost="message">
          {model.message}
        </div>
      )}
      <Requirements
        model={model}
        actions={actions}
        trans={trans}
        writable={writable}
      />
      <InstallerLog model={model} trans={trans} />
      <History
        model={model}
        actions={actions}
        trans={trans}
        writable={writable}
      />
    </div>
  );
}

/** Modules a notebook could not import, each with a one-click install of its distribution. */
function MissingImports({
  model,
  actions,
  trans
}: IViewProps): JSX.Element | null {
  const missing = model.missing;
  if (!missing.length) {
    return null;
  }
  return (
    <section className="jp-bifrost-missing" data-bifrost="missing">
      <ul>
        {missing.map(offer => (
          <li key={offer.distribution}>
            <span>
              {trans.__('A notebook could not import %1.', offer.module)}
            </span>{' '}
            <button
              type="button"
              className="jp-mod-styled jp-bifrost-button"
              disabled={model.busy !== null}
              onClick={() => void actions.installMissing(offer)}
            >
              {trans.__('Install %1…', offer.distribution)}
            </button>
          </li>
        ))}
      </ul>
    </section>
  );
}

function StatusStrip({
  model,
  trans
}: {
  model: PackagesModel;
  trans: TranslationBundle;
}) {
  const items = model.status ? statusItems(model.status, trans) : [];
  return (
    <div
      className="jp-bifrost-status"
      data-bifrost="status"
      role="status"
      aria-live="polite"
      aria-label={trans.__('Packages status')}
    >
      {model.busy && (
        <span className="jp-bifrost-status-busy">{model.busy}</span>
      )}
      {items.map(item => (
        <span
          key={item.key}
          data-status={item.key}
          className={item.ok ? 'jp-bifrost-status-ok' : 'jp-bifrost-status-bad'}
        >
          {item.text}
        </span>
      ))}
    </div>
  );
}

function InstallBox({
  actions,
  trans,
  disabled
}: {
  actions: IPanelActions;
  trans: TranslationBundle;
  disabled: boolean;
}) {
  const [text, setText] = React.useState('');
  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    const specs = splitSpecs(text);
    if (specs.length === 0) {
      return;
    }
    const outcome = await actions.install(specs);
    if (outcome.ok) {
      setText('');
    }
  };
  return (
    <form className="jp-bifrost-install" onSubmit={submit}>
      <input
        className="jp-mod-styled jp-bifrost-install-input"
        type="text"
        aria-label={trans.__('Package specs to install')}
        placeholder={trans.__('e.g. pandas==2.2 "requests[socks]>=2"')}
        value={text}
        onChange={event => setText(event.target.value)}
        spellCheck={false}
        autoComplete="off"
      />
      <button
        type="submit"
        className="jp-mod-styled jp-mod-accept jp-bifrost-button"
        disabled={disabled || splitSpecs(text).length === 0}
      >
        {trans.__('Install')}
      </button>
    </form>
  );
}

function Requirements({
  model,
  actions,
  trans,
  writable
}: IViewProps & { writable: boolean }) {
  const rows = model.rows;
  const busy = model.busy !== null;
  return (
    <section
      className="jp-bifrost-section"
      aria-labelledby="jp-bifrost-requirements-title"
    >
      <h3 id="jp-bifrost-requirements-title">
        {trans.__('Saved requirements')}
      </h3>
      {model.loading ? (
        <p className="jp-bifrost-empty">{trans.__('Loading…')}</p>
      ) : rows.length === 0 ? (
        <div className="jp-bifrost-empty" data-bifrost="empty">
          <p>{trans.__('No packages saved in this workspace yet.')}</p>
          <p>
            {trans.__(
              'Install a package: it stays installed across kernel, server and container restarts'
            )}
          </p>
        </div>
      ) : (
        <ul className="jp-bifrost-requirements">
          {rows.map(row => (
            <RequirementRow
              key={row.name || row.spec}
              row={row}
              actions={actions}
              trans={trans}
              writable={writable}
              busy={busy}
            />
          ))}
        </ul>
      )}
    </section>
  );
}

function RequirementRow({
  row,
  actions,
  trans,
  writable,
  busy
}: {
  row: IRequirementRow;
  actions: IPanelActions;
  trans: TranslationBundle;
  writable: boolean;
  busy: boolean;
}) {
  return (
    <li className="jp-bifrost-requirement" data-requirement={row.name}>
      <div className="jp-bifrost-requirement-spec">
        <code data-bifrost="spec">{row.spec}</code>
      </div>
      <dl className="jp-bifrost-versions">
        <dt>{trans.__('locked')}</dt>
        <dd data-bifrost="locked">{row.locked ?? '—'}</dd>
        <dt>{trans.__('loaded')}</dt>
        <dd data-bifrost="loaded">{row.loaded ?? '—'}</dd>
      </dl>
      {row.stale && (
        <div className="jp-bifrost-stale">
          <span className="jp-bifrost-badge" data-bifrost="mismatch">
            {trans.__('restart to use %1', row.locked ?? '')}
          </span>
          <button
            type="button"
            className="jp-mod-styled jp-bifrost-button"
            onClick={() => void actions.restartKernel()}
          >
            {trans.__('Restart kernel')}
          </button>
        </div>
      )}
      {writable && (
        <div className="jp-bifrost-row-actions">
          {[
            {
              label: trans.__('Remove'),
              title: trans.__('Remove %1 from the requirements', row.name),
              run: () => actions.remove(row.name)
            },
            {
              label: trans.__('Upgrade'),
              title: trans.__(
                'Install the newest version of %1 the index offers (drops the version constraint)',
                row.name
              ),
              run: () => actions.upgrade(row.spec)
            },
            {
              label: trans.__('Change version'),
              title: trans.__('Install another version of %1', row.name),
              run: () => actions.changeVersion(row)
            }
          ].map(({ label, title, run }) => (
            <button
              key={label}
              type="button"
              className="jp-mod-styled jp-bifrost-button"
              title={title}
              disabled={busy}
              onClick={() => void run()}
            >
              {label}
            </button>
          ))}
        </div>
      )}
    </li>
  );
}

/** A message the panel shows as an alert; `name` is its `data-bifrost` (tests find it so). */
function Alert({
  className,
  name,
  children
}: {
  className: string;
  name: string;
  children: React.ReactNode;
}) {
  return (
    <div className={className} data-bifrost={name} role="alert">
      {children}
    </div>
  );
}

function InstallerLog({
  model,
  trans
}: {
  model: PackagesModel;
  trans: TranslationBundle;
}) {
  const logRef = React.useRef<HTMLPreElement>(null);
  React.useEffect(() => {
    const log = logRef.current;
    if (log) {
      log.scrollTop = log.scrollHeight;
    }
  }, [model.log, model.logOpen]);
  return (
    <details
      className="jp-bifrost-log"
      data-bifrost="log"
      open={model.logOpen}
      onToggle={event =>
        model.setLogOpen((event.currentTarget as HTMLDetailsElement).open)
      }
    >
      <summary>{trans.__('Installer log')}</summary>
      <pre
        ref={logRef}
        role="log"
        aria-label={trans.__('Installer log')}
        tabIndex={0}
        className="jp-bifrost-log-lines"
      >
        {model.log.length > 0
          ? model.log.join('\n')
          : trans.__('(no output yet)')}
      </pre>
    </details>
  );
}

function History({
  model,
  actions,
  trans,
  writable
}: IViewProps & { writable: boolean }) {
  const busy = model.busy !== null;
  return (
    <section
      className="jp-bifrost-section"
      aria-labelledby="jp-bifrost-history-title"
    >
      <h3 id="jp-bifrost-history-title">{trans.__('History')}</h3>
      {model.history.length === 0 ? (
        <p className="jp-bifrost-empty">{trans.__('No changes saved yet.')}</p>
      ) : (
        <ol className="jp-bifrost-history">
          {model.history.map(revision => (
            <HistoryRow
              key={revision.id}
              revision={revision}
              trans={trans}
              writable={writable}
              busy={busy}
              onRollback={() => void actions.rollback(revision.id)}
            />
          ))}
        </ol>
      )}
    </section>
  );
}

function HistoryRow({
  revision,
  trans,
  writable,
  busy,
  onRollback
}: {
  revision: IRevision;
  trans: TranslationBundle;
  writable: boolean;
  busy: boolean;
  onRollback: () => void;
}) {
  const diff = diffRequirements(revision.previous_content, revision.content);
  const when = new Date(revision.created_at);
  return (
    <li className="jp-bifrost-revision" data-revision={revision.id}>
      <div className="jp-bifrost-revision-head">
        <span className="jp-bifrost-revision-id">
          {trans.__('Revision %1', revision.id)}
        </span>
        <span>{revision.user ?? trans.__('unknown user')}</span>
        <time dateTime={revision.created_at} title={revision.created_at}>
          {isNaN(when.getTime()) ? revision.created_at : when.toLocaleString()}
        </time>
        <span className="jp-bifrost-revision-source">{revision.source}</span>
      </div>
      <ul
        className="jp-bifrost-diff"
        aria-label={trans.__('Changes in revision %1', revision.id)}
      >
        {diff.added.map(line => (
          <li key={`+${line}`} className="jp-bifrost-diff-added">
            <span aria-hidden="true">+ </span>
            <span className="jp-bifrost-sr-only">{trans.__('added')} </span>
            {line}
          </li>
        ))}
        {diff.removed.map(line => (
          <li key={`-${line}`} className="jp-bifrost-diff-removed">
            <span aria-hidden="true">− </span>
            <span className="jp-bifrost-sr-only">{trans.__('removed')} </span>
            {line}
          </li>
        ))}
        {diff.added.length + diff.removed.length === 0 && (
          <li className="jp-bifrost-diff-none">
            {trans.__('no change in the requirements')}
          </li>
        )}
      </ul>
      {writable && (
        <button
          type="button"
          className="jp-mod-styled jp-bifrost-button"
          disabled={busy}
          onClick={onRollback}
        >
          {trans.__('Roll back')}
        </button>
      )}
    </li>
  );
}

function ExportMenu({
  formats,
  actions,
  trans
}: {
  /** The server's list (`GET api/packages/status`): the menu names no format itself. */
  formats: IExportFormat[];
  actions: IPanelActions;
  trans: TranslationBundle;
}) {
  const [open, setOpen] = React.useState(false);
  return (
    <div
      className="jp-bifrost-export-menu"
      onKeyDown={event => {
        if (event.key === 'Escape') {
          setOpen(false);
        }
      }}
    >
      <button
        type="button"
        className="jp-mod-styled jp-bifrost-button"
        aria-haspopup="menu"
        aria-expanded={open}
        onClick={() => setOpen(!open)}
      >
        {trans.__('Export')}
      </button>
      {open && (
        <ul
          role="menu"
          className="jp-bifrost-menu"
          aria-label={trans.__('Export format')}
        >
          {formats.map(({ format, label }) => (
            <li role="none" key={format}>
              <button
                type="button"
                role="menuitem"
                data-format={format}
                onClick={() => {
                  setOpen(false);
                  void actions.exportAs(format);
                }}
              >
                {trans.__(label)}
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
