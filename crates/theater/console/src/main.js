// The Theater console: login, the header and the hash router.

import { html, render } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { get, post, setUnauthorizedHandler, ApiError } from './api.js';
import { parseHash, errorText } from './util.js';
import { ActorsPage } from './actors.js';
import { ChainsPage } from './chains.js';
import { ChainPage } from './chain.js';
import { EntryPage } from './entry.js';
import { GraphPage } from './graph.js';

const LOGIN_HINT = 'Open the URL `theater console` prints.';

/** Logs in with the `#code=` fragment if there is one, then reads `info`. */
async function start() {
  const m = location.hash.match(/^#code=([^&]*)/);
  if (m) {
    let code;
    try {
      code = decodeURIComponent(m[1]);
    } catch {
      code = m[1];
    }
    try {
      await post('/console/login', { code }, { quiet401: true });
    } catch (e) {
      // The code is spent or wrong either way: keep it out of the address bar and history.
      history.replaceState(null, '', '/console/');
      return { login: e instanceof ApiError && e.status !== 0 ? `Login failed: ${e.message}. ${LOGIN_HINT}` : `Login failed: ${errorText(e)}` };
    }
    history.replaceState(null, '', '/console/#/actors');
  }
  try {
    return { info: await get('info', { quiet401: true }) };
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return { login: `Not logged in: ${e.message}. ${LOGIN_HINT}` };
    return { error: errorText(e) };
  }
}

function useHash() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const f = () => setHash(location.hash);
    addEventListener('hashchange', f);
    addEventListener('popstate', f);
    return () => {
      removeEventListener('hashchange', f);
      removeEventListener('popstate', f);
    };
  }, []);
  return [hash, setHash];
}

function Header({ info, route }) {
  const offline = info && info.mode === 'offline';
  const cur = route.page === 'chain' || route.page === 'entry' ? 'chains' : route.page;
  const link = (id, page, label, hidden) => html`<a id=${id} href=${`#/${page}`} hidden=${hidden}
    class=${cur === page ? 'active' : undefined} aria-current=${cur === page ? 'page' : undefined}>${label}</a>`;
  return html`<header class="top">
    <a class="brand" href="#/">Theater</a>
    <nav>
      ${link('nav-actors', 'actors', 'Actors', offline)}
      ${link('nav-chains', 'chains', 'Chains', false)}
      ${link('nav-graph', 'graph', 'Graph', false)}
    </nav>
    ${info && html`<span class="mode" data-mode=${info.mode} title=${info.data_dir || ''}>
      ${info.mode}${info.version ? ` · ${info.version}` : ''}
    </span>`}
  </header>`;
}

function Page({ route, info }) {
  const live = info.mode !== 'offline';
  switch (route.page) {
    case 'actors':
      return live ? html`<${ActorsPage} />` : null;
    case 'chains':
      return html`<${ChainsPage} />`;
    case 'chain':
      return html`<${ChainPage} key=${route.chain} chain=${route.chain} />`;
    case 'entry':
      return html`<${EntryPage} key=${`${route.chain}/${route.seq}`} chain=${route.chain} seq=${route.seq} />`;
    case 'graph':
      return html`<${GraphPage} key=${`${(route.chains || ['*']).join(',')}|${route.limit || ''}`} route=${route} />`;
    default:
      return html`<p class="error">No such page: <code>${route.hash}</code>. <a href="#/">Start page</a></p>`;
  }
}

function App() {
  const [state, setState] = useState({ loading: true });
  const [hash, setHash] = useHash();

  useEffect(() => {
    setUnauthorizedHandler((e) => setState((s) => ({ ...s, login: `The session has ended: ${e.message}. ${LOGIN_HINT}` })));
  }, []);

  // At first, and again when a new `#code=` is pasted into this tab.
  const hasCode = hash.startsWith('#code=');
  useEffect(() => {
    if (!hasCode && !state.loading) return;
    setState({ loading: true });
    start().then((s) => {
      setHash(location.hash);
      setState(s);
    });
  }, [hasCode]);

  const info = state.info;
  const route = parseHash(hash);
  const startPage = info && info.mode === 'offline' ? '#/chains' : '#/actors';

  // The start page, and offline no actors page: rewrite the address rather than add history.
  useEffect(() => {
    if (!info) return;
    if (route.page === 'default' || (route.page === 'actors' && info.mode === 'offline')) {
      history.replaceState(null, '', `/console/${startPage}`);
      setHash(location.hash);
    }
  }, [info, hash]);

  let main;
  if (state.loading) main = html`<p class="muted">Connecting…</p>`;
  else if (state.login) main = html`<p id="login-error" class="error" role="alert">${state.login}</p>`;
  else if (state.error) main = html`<p class="error" role="alert">${state.error}</p>`;
  else if (route.page === 'default') main = null;
  else main = html`<${Page} route=${route} info=${info} />`;

  return html`<${Header} info=${info} route=${route} />
    <main>${main}</main>`;
}

render(html`<${App} />`, document.getElementById('app'));
