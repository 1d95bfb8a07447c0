// The install box at the top of the panel: PEP 508 specs, and as the user types a bare name
// the index's names for it, then for a chosen name its versions (newest first, pre-releases
// and yanked ones marked). Picking a version puts `name==version` in the box; Install installs
// what the box holds, also when the index is unreachable (the installer has the last word).

import type { TranslationBundle } from '@jupyterlab/translation';
import { Button, InputGroup, UseSignal } from '@jupyterlab/ui-components';
import * as React from 'react';

import type { IPanelActions } from './actions';
import type { IProject } from './api';
import type { PackagesModel } from './model';
import { splitSpecs } from './requirements';
import type { SearchModel } from './search';

interface IProps {
  model: PackagesModel;
  search: SearchModel;
  actions: IPanelActions;
  trans: TranslationBundle;
}

/** The box, its Install button and the list under it. */
export function InstallBox(props: IProps): JSX.Element | null {
  const { model, search, trans } = props;
  if (model.readOnly) {
    return (
      <div className="jp-bifrost-readonly" data-bifrost="read-only" role="note">
        {trans.__(
          "Read-only: your server's authorizer does not allow changes to packages"
        )}
      </div>
    );
  }
  return (
    <UseSignal signal={search.stateChanged}>
      {() => <InstallForm {...props} />}
    </UseSignal>
  );
}

function InstallForm({ model, search, actions, trans }: IProps): JSX.Element {
  const busy = model.busy !== null;
  const specs = splitSpecs(search.text);
  const submit = async (event: React.FormEvent) => {
    event.preventDefault();
    if (specs.length === 0 || busy) {
      return;
    }
    search.close();
    const outcome = await actions.install(specs);
    if (outcome.ok) {
      search.setText('');
      search.close();
    }
  };
  return (
    <form
      className="jp-bifrost-install"
      onSubmit={submit}
      onKeyDown={event => {
        if (event.key === 'Escape') {
          search.close();
        }
      }}
    >
      <div className="jp-bifrost-install-row">
        <InputGroup
          className="jp-bifrost-install-input"
          type="text"
          aria-label={trans.__('Package specs to install')}
          placeholder={trans.__('Search or spec')}
          title={trans.__(
            'A project name searches the index; one or more PEP 508 specs (pandas==2.2 "requests[socks]>=2") install'
          )}
          value={search.text}
          onChange={event => search.setText(event.currentTarget.value)}
          spellCheck={false}
          autoComplete="off"
          rightIcon="ui-components:search"
        />
        <Button
          type="submit"
          className="jp-bifrost-install-button"
          small
          disabled={busy || specs.length === 0}
        >
          {trans.__('Install')}
        </Button>
      </div>
      {search.open || search.loadingProject ? (
        <SearchList search={search} trans={trans} />
      ) : null}
    </form>
  );
}

/** Names the index has for the last word, or the versions of the chosen one. */
function SearchList({
  search,
  trans
}: {
  search: SearchModel;
  trans: TranslationBundle;
}): JSX.Element {
  const unreachable = search.indexMessage;
  return (
    <div className="jp-bifrost-search" data-bifrost="search">
      {unreachable !== null && (
        <p className="jp-bifrost-search-note" data-bifrost="index-unreachable">
          {trans.__(
            'The package index is unreachable (%1): a typed spec still installs.',
            unreachable
          )}
        </p>
      )}
      {search.error !== null && (
        <p className="jp-bifrost-search-note" data-bifrost="search-error">
          {trans.__('Search failed: %1', search.error)}
        </p>
      )}
      {search.loadingProject ? (
        <p className="jp-bifrost-search-note">
          {trans.__('Reading versions…')}
        </p>
      ) : search.project ? (
        <ProjectVersions
          search={search}
          project={search.project}
          trans={trans}
        />
      ) : search.result ? (
        <Names search={search} trans={trans} />
      ) : null}
    </div>
  );
}

function Names({
  search,
  trans
}: {
  search: SearchModel;
  trans: TranslationBundle;
}): JSX.Element | null {
  const result = search.result!;
  if (!result.index.reachable) {
    return null;
  }
  if (result.names.length === 0) {
    return (
      <p className="jp-bifrost-search-note" data-bifrost="not-in-index">
        {trans.__(
          'No project starting with %1 in %2',
          result.query,
          result.index.label
        )}
      </p>
    );
  }
  return (
    <ul
      className="jp-bifrost-options"
      role="listbox"
      aria-label={trans.__('Projects in %1', result.index.label)}
    >
      {result.names.map(entry => (
        <li
          key={entry.name}
          role="option"
          aria-selected={false}
          tabIndex={0}
          data-project={entry.name}
          onClick={() => void search.choose(entry.name)}
          onKeyDown={event => {
            if (event.key === 'Enter') {
              event.preventDefault();
              void search.choose(entry.name);
            }
          }}
        >
          <span className="jp-bifrost-option-name">{entry.display}</span>
          {entry.saved && (
            <span className="jp-bifrost-badge">{trans.__('saved')}</span>
          )}
        </li>
      ))}
      {result.more && (
        <li className="jp-bifrost-search-note" role="presentation">
          {trans.__('more: type more of the name')}
        </li>
      )}
    </ul>
  );
}

function ProjectVersions({
  search,
  project,
  trans
}: {
  search: SearchModel;
  project: IProject;
  trans: TranslationBundle;
}): JSX.Element {
  const pick = (spec: string) => {
    search.setText(search.withLastWord(spec));
    search.close();
  };
  if (!project.found) {
    return (
      <div data-bifrost="not-in-index">
        <p className="jp-bifrost-search-note">
          {trans.__(
            '%1 is not in the index %2',
            project.name,
            project.index.label
          )}
        </p>
        {(project.close ?? []).length > 0 && (
          <ul
            className="jp-bifrost-options"
            role="listbox"
            aria-label={trans.__('Close names')}
          >
            {(project.close ?? []).map(name => (
              <li
                key={name}
                role="option"
                aria-selected={false}
                tabIndex={0}
                data-project={name}
                onClick={() => void search.choose(name)}
              >
                {trans.__('did you mean %1?', name)}
              </li>
            ))}
          </ul>
        )}
      </div>
    );
  }
  return (
    <VersionList
      project={project}
      trans={trans}
      onPick={version =>
        pick(version ? `${project.name}==${version}` : project.name)
      }
      offerAny
    />
  );
}

/** The versions of a project, newest first, as options (also the Change version dialog's). */
export function VersionList({
  project,
  trans,
  onPick,
  selected,
  offerAny
}: {
  project: IProject;
  trans: TranslationBundle;
  onPick: (version: string | null) => void;
  selected?: string | null;
  offerAny?: boolean;
}): JSX.Element {
  return (
    <ul
      className="jp-bifrost-options jp-bifrost-versions"
      role="listbox"
      aria-label={trans.__('Versions of %1', project.name)}
      data-bifrost="versions"
    >
      {offerAny && (
        <li
          role="option"
          aria-selected={false}
          tabIndex={0}
          data-version=""
          onClick={() => onPick(null)}
        >
          {trans.__('%1, newest the index allows', project.name)}
        </li>
      )}
      {project.versions.map(v => (
        <li
          key={v.version}
          role="option"
          aria-selected={selected === v.version}
          tabIndex={0}
          data-version={v.version}
          className={selected === v.version ? 'jp-mod-selected' : undefined}
          title={
            v.yanked
              ? trans.__(
                  'yanked: %1',
                  v.yanked_reason ?? trans.__('no reason given')
                )
              : (v.upload_time ?? undefined)
          }
          onClick={() => onPick(v.version)}
          onKeyDown={event => {
            if (event.key === 'Enter') {
              event.preventDefault();
              onPick(v.version);
            }
          }}
        >
          <span className="jp-bifrost-option-name">{v.version}</span>
          {project.locked === v.version && (
            <span
              className="jp-bifrost-badge jp-mod-locked"
              data-bifrost="locked-version"
            >
              {trans.__('locked')}
            </span>
          )}
          {v.prerelease && (
            <span className="jp-bifrost-badge" data-bifrost="prerelease">
              {trans.__('pre-release')}
            </span>
          )}
          {v.yanked && (
            <span
              className="jp-bifrost-badge jp-mod-warn"
              data-bifrost="yanked"
            >
              {v.yanked_reason
                ? trans.__('yanked: %1', v.yanked_reason)
                : trans.__('yanked')}
            </span>
          )}
          {!v.python_ok && v.requires_python && (
            <span className="jp-bifrost-badge jp-mod-warn">
              {trans.__('Python %1', v.requires_python)}
            </span>
          )}
        </li>
      ))}
    </ul>
  );
}
