// What each section of the panel renders from the model: the notices under the install box,
// the environment (the kernel followed and the server's status), the installed requirements
// with their dependency trees (one compact line each, windowed when long), and the history.
// Views hold no state but the list's scroll position; every click goes to the actions.

import type { TranslationBundle } from '@jupyterlab/translation';
import {
  ToolbarButtonComponent,
  caretDownIcon,
  caretRightIcon,
  deleteIcon,
  kernelIcon,
  listIcon,
  moveUpIcon,
  undoIcon
} from '@jupyterlab/ui-components';
import * as React from 'react';

import type { IPanelActions } from './actions';
import type { IRevision } from './api';
import type { PackagesModel } from './model';
import { diffRequirements } from './requirements';
import { statusItems } from './status';
import type { ITreeLine } from './tree';

/** The height of one line of the installed list (style/base.css says the same). */
export const LINE_HEIGHT = 24;

/** Lists longer than this are windowed: only the lines in view (and a margin) are in the DOM. */
export const WINDOW_FROM = 60;

/** Diff lines a revision shows before "N more lines". */
const DIFF_LINES = 6;

/** Lines rendered above and below the visible ones. */
const OVERSCAN = 5;

interface IViewProps {
  model: PackagesModel;
  actions: IPanelActions;
  trans: TranslationBundle;
}

/** Errors, the last change's message, and notebooks' missing imports, under the install box. */
export function NoticesView({
  model,
  actions,
  trans
}: IViewProps): JSX.Element {
  const writable = !model.readOnly;
  const missing = writable ? model.missing : [];
  return (
    <div className="jp-bifrost-notices">
      {missing.length > 0 && (
        <ul className="jp-bifrost-missing" data-bifrost="missing">
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
      )}
      {model.busy && (
        <div className="jp-bifrost-busy" data-bifrost="busy" role="status">
          {model.busy}
        </div>
      )}
      {model.error && (
        <div className="jp-bifrost-error" data-bifrost="error" role="alert">
          <p>{model.error.message}</p>
          {model.error.detail && (
            <details>
              <summary>{trans.__('Show details')}</summary>
              <pre>{model.error.detail}</pre>
            </details>
          )}
        </div>
      )}
      {model.savedError && (
        <div
          className="jp-bifrost-readonly"
          data-bifrost="saved-error"
          role="alert"
        >
          {trans.__(
            'The saved requirements fail validation (%1): nothing of them is installed. The next install or rollback replaces them.',
            model.savedError
          )}
        </div>
      )}
      {model.loadError && (
        <div
          className="jp-bifrost-error"
          data-bifrost="load-error"
          role="alert"
        >
          <p>{model.loadError.message}</p>
        </div>
      )}
      {model.message && (
        <div className="jp-bifrost-message" data-bifrost="message">
          {model.message}
        </div>
      )}
    </div>
  );
}

/** The kernel the panel follows, and the server's status, one short line each. */
export function EnvironmentView({
  model,
  trans
}: {
  model: PackagesModel;
  trans: TranslationBundle;
}): JSX.Element {
  const items = model.status ? statusItems(model.status, trans) : [];
  const name = model.kernelName;
  return (
    <div className="jp-bifrost-environment">
      <div
        className="jp-bifrost-kernel"
        data-bifrost="kernel"
        title={
          name
            ? trans.__(
                'Versions in memory are those of the kernel of %1, the active notebook',
                name
              )
            : undefined
        }
      >
        <kernelIcon.react tag="span" className="jp-bifrost-line-icon" />
        <span className="jp-bifrost-ellipsis">
          {name
            ? model.hasKernel
              ? trans.__('Kernel of %1', name)
              : trans.__('%1 has no kernel', name)
            : trans.__('No notebook active: versions in memory unknown')}
        </span>
      </div>
      <ul
        className="jp-bifrost-status"
        data-bifrost="status"
        role="status"
        aria-live="polite"
        aria-label={trans.__('Packages status')}
      >
        {items.map(item => (
          <li
            key={item.key}
            data-status={item.key}
            title={item.text}
            className={
              'jp-bifrost-ellipsis ' +
              (item.ok ? 'jp-bifrost-status-ok' : 'jp-bifrost-status-bad')
            }
          >
            {item.text}
          </li>
        ))}
      </ul>
    </div>
  );
}

/** The requirement lines and their dependency trees, windowed when the list is long. */
export function InstalledView({
  model,
  actions,
  trans,
  scroller
}: IViewProps & { scroller: HTMLElement }): JSX.Element {
  const [view, setView] = React.useState(() => ({
    top: scroller.scrollTop,
    height: scroller.clientHeight || 600
  }));
  React.useEffect(() => {
    const update = () =>
      setView({ top: scroller.scrollTop, height: scroller.clientHeight });
    scroller.addEventListener('scroll', update, { passive: true });
    const observer = new ResizeObserver(update);
    observer.observe(scroller);
    return () => {
      scroller.removeEventListener('scroll', update);
      observer.disconnect();
    };
  }, [scroller]);
  if (model.loading) {
    return <p className="jp-bifrost-empty">{trans.__('Loading…')}</p>;
  }
  const lines = model.lines;
  if (lines.length === 0) {
    return (
      <div className="jp-bifrost-empty" data-bifrost="empty">
        <p>{trans.__('No packages saved in this workspace yet.')}</p>
        <p>
          {trans.__(
            'Install a package: it stays installed across kernel, server and container restarts'
          )}
        </p>
      </div>
    );
  }
  let first = 0;
  let last = lines.length;
  if (lines.length > WINDOW_FROM) {
    first = Math.max(0, Math.floor(view.top / LINE_HEIGHT) - OVERSCAN);
    last = Math.min(
      lines.length,
      Math.ceil((view.top + view.height) / LINE_HEIGHT) + OVERSCAN
    );
  }
  return (
    <ul
      className="jp-bifrost-requirements"
      role="tree"
      aria-label={trans.__('Installed packages')}
      style={{ height: lines.length * LINE_HEIGHT }}
    >
      {lines.slice(first, last).map((line, i) => (
        <Line
          key={line.path}
          line={line}
          top={(first + i) * LINE_HEIGHT}
          model={model}
          actions={actions}
          trans={trans}
        />
      ))}
    </ul>
  );
}

function Line({
  line,
  top,
  model,
  actions,
  trans
}: IViewProps & { line: ITreeLine; top: number }): JSX.Element {
  const style = { top, paddingLeft: 4 + line.depth * 16 };
  if (line.kind === 'note') {
    return (
      <li
        className="jp-bifrost-line jp-bifrost-line-note"
        style={style}
        role="none"
      >
        {line.note === 'loading'
          ? (model.treeError ?? trans.__('Reading the dependency tree…'))
          : trans.__('requires nothing')}
      </li>
    );
  }
  const expanded = model.isExpanded(line.path);
  const caret = line.expandable ? (
    <button
      type="button"
      className="jp-bifrost-caret"
      aria-label={
        expanded ? trans.__('Hide dependencies') : trans.__('Show dependencies')
      }
      aria-expanded={expanded}
      onClick={() => model.toggle(line.path)}
    >
      {expanded ? (
        <caretDownIcon.react tag="span" />
      ) : (
        <caretRightIcon.react tag="span" />
      )}
    </button>
  ) : (
    <span className="jp-bifrost-caret" aria-hidden="true" />
  );
  if (line.kind === 'dependency') {
    const why = [
      line.specifier
        ? trans.__('required as %1%2', line.name, line.specifier)
        : trans.__('required by the package above'),
      line.extra ? trans.__('for its extra [%1]', line.extra) : '',
      line.alsoRequiredBy.length
        ? trans.__('also by %1', line.alsoRequiredBy.join(', '))
        : ''
    ]
      .filter(Boolean)
      .join('; ');
    return (
      <li
        className="jp-bifrost-line jp-bifrost-dependency"
        style={style}
        role="treeitem"
        aria-level={line.depth + 1}
        aria-expanded={line.expandable ? expanded : undefined}
        data-dependency={line.name}
        title={why}
      >
        {caret}
        <span className="jp-bifrost-name jp-bifrost-ellipsis">{line.name}</span>
        <span className="jp-bifrost-version">{line.version ?? '—'}</span>
        {line.cycle && (
          <span className="jp-bifrost-badge jp-mod-warn" data-bifrost="cycle">
            {trans.__('cycle')}
          </span>
        )}
      </li>
    );
  }
  const row = line.row;
  const busy = model.busy !== null;
  const writable = !model.readOnly;
  const constraint = row.spec.slice(row.spec.search(/[^A-Za-z0-9._-]|$/));
  return (
    <li
      className="jp-bifrost-line jp-bifrost-requirement"
      style={style}
      role="treeitem"
      aria-level={1}
      aria-expanded={line.expandable ? expanded : undefined}
      data-requirement={row.name}
      title={
        row.loaded
          ? trans.__(
              '%1: locked %2, %3 in the kernel’s memory',
              row.spec,
              row.locked ?? '—',
              row.loaded
            )
          : trans.__('%1: locked %2', row.spec, row.locked ?? '—')
      }
    >
      {caret}
      <code className="jp-bifrost-name jp-bifrost-ellipsis" data-bifrost="spec">
        {row.spec.slice(0, row.spec.length - constraint.length)}
        <span className="jp-bifrost-constraint">{constraint}</span>
      </code>
      <span
        className={row.stale ? 'jp-bifrost-sr-only' : 'jp-bifrost-version'}
        data-bifrost="locked"
      >
        {row.locked ?? '—'}
      </span>
      <span className="jp-bifrost-sr-only">
        {trans.__('in memory')}{' '}
        <span data-bifrost="loaded">{row.loaded ?? '—'}</span>
      </span>
      {row.stale && (
        // The badge is the restart: one control, so the name keeps its room.
        <button
          type="button"
          className="jp-bifrost-badge jp-mod-warn jp-bifrost-restart"
          data-bifrost="mismatch"
          aria-label={trans.__('Restart kernel')}
          title={trans.__(
            'The kernel has %1 in memory: restart it to use %2',
            row.loaded ?? '',
            row.locked ?? ''
          )}
          onClick={() => void actions.restartKernel()}
        >
          {trans.__('restart to use %1', row.locked ?? '')}
        </button>
      )}
      <span className="jp-bifrost-actions">
        {writable && (
          <>
            <ToolbarButtonComponent
              icon={listIcon}
              tooltip={trans.__('Change version')}
              enabled={!busy}
              onClick={() => void actions.changeVersion(row)}
            />
            <ToolbarButtonComponent
              icon={moveUpIcon}
              tooltip={trans.__('Upgrade')}
              enabled={!busy}
              onClick={() => void actions.upgrade(row.spec)}
            />
            <ToolbarButtonComponent
              icon={deleteIcon}
              tooltip={trans.__('Remove')}
              enabled={!busy}
              onClick={() => void actions.remove(row.name)}
            />
          </>
        )}
      </span>
    </li>
  );
}

/** Who changed what, when and from where; each revision can be rolled back to. */
export function HistoryView({
  model,
  actions,
  trans
}: IViewProps): JSX.Element {
  if (model.history.length === 0) {
    return (
      <p className="jp-bifrost-empty">{trans.__('No changes saved yet.')}</p>
    );
  }
  const writable = !model.readOnly;
  const busy = model.busy !== null;
  return (
    <ol className="jp-bifrost-history">
      {model.history.map(revision => (
        <HistoryRow
          key={revision.id}
          revision={revision}
          trans={trans}
          writable={writable}
          busy={busy}
          actions={actions}
        />
      ))}
    </ol>
  );
}

/** One revision, memoised: the history re-renders only the revisions that changed. */
const HistoryRow = React.memo(function HistoryRow({
  revision,
  trans,
  writable,
  busy,
  actions
}: {
  revision: IRevision;
  trans: TranslationBundle;
  writable: boolean;
  busy: boolean;
  actions: IPanelActions;
}): JSX.Element {
  const [open, setOpen] = React.useState(false);
  const lines = React.useMemo(() => {
    const diff = diffRequirements(revision.previous_content, revision.content);
    return [
      ...diff.added.map(line => ({ sign: '+', line })),
      ...diff.removed.map(line => ({ sign: '-', line }))
    ];
  }, [revision.previous_content, revision.content]);
  // A revision of a hundred lines shows its first few: the history stays short to render.
  const shown = open ? lines : lines.slice(0, DIFF_LINES);
  const hidden = lines.length - shown.length;
  const when = new Date(revision.created_at);
  return (
    <li className="jp-bifrost-revision" data-revision={revision.id}>
      <div className="jp-bifrost-revision-head">
        <span className="jp-bifrost-revision-id">#{revision.id}</span>
        <span className="jp-bifrost-ellipsis">
          {revision.user ?? trans.__('unknown user')}
        </span>
        <time dateTime={revision.created_at} title={revision.created_at}>
          {isNaN(when.getTime())
            ? revision.created_at
            : when.toLocaleString(undefined, {
                dateStyle: 'short',
                timeStyle: 'short'
              })}
        </time>
        <span
          className="jp-bifrost-revision-source jp-bifrost-ellipsis"
          title={revision.source}
        >
          {revision.source}
        </span>
        {writable && (
          <span className="jp-bifrost-actions">
            <ToolbarButtonComponent
              icon={undoIcon}
              tooltip={trans.__('Roll back')}
              enabled={!busy}
              onClick={() => void actions.rollback(revision.id)}
            />
          </span>
        )}
      </div>
      <ul
        className="jp-bifrost-diff"
        aria-label={trans.__('Changes in revision %1', revision.id)}
      >
        {shown.map(({ sign, line }) =>
          sign === '+' ? (
            <li key={`+${line}`} className="jp-bifrost-diff-added">
              <span aria-hidden="true">+ </span>
              <span className="jp-bifrost-sr-only">{trans.__('added')} </span>
              {line}
            </li>
          ) : (
            <li key={`-${line}`} className="jp-bifrost-diff-removed">
              <span aria-hidden="true">− </span>
              <span className="jp-bifrost-sr-only">{trans.__('removed')} </span>
              {line}
            </li>
          )
        )}
        {hidden > 0 && (
          <li className="jp-bifrost-diff-none">
            <button
              type="button"
              className="jp-bifrost-link"
              onClick={() => setOpen(true)}
            >
              {trans._n('%1 more line', '%1 more lines', hidden)}
            </button>
          </li>
        )}
        {lines.length === 0 && (
          <li className="jp-bifrost-diff-none">
            {trans.__('no change in the requirements')}
          </li>
        )}
      </ul>
    </li>
  );
});
