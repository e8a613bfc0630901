// The Theater console: login, the header and the hash router.

import { html, render } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { get, login, logout, getSession, setUnauthorizedHandler, ApiError } from './api.js';
import { parseHash, errorText } from './util.js';
import { ActorsPage } from './actors.js';
import { ChainsPage } from './chains.js';
import { ChainPage } from './chain.js';
import { EntryPage } from './entry.js';
import { GraphPage } from './graph.js';

const LOGIN_HINT = 'Open the URL `theater console` prints.';
const LOGGED_OUT = 'Logged out. To use the console again, open a new link from `theater console`.';

/**
 * Logs in with the `#code=` fragment if there is one (storing the session in this tab), then
 * reads `info` with the stored session.
 */
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
      await login(code);
    } catch (e) {
      // The code is spent or wrong either way: keep it out of the address bar and history.
      history.replaceState(null, '', '/console/');
      return { login: e instanceof ApiError && e.status !== 0 ? `Login failed: ${e.message}. ${LOGIN_HINT}` : `Login failed: ${errorText(e)}` };
    }
    history.replaceState(null, '', '/console/#/actors');
  }
  if (!getSession()) return { login: `Not logged in (no session in this tab). ${LOGIN_HINT}` };
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

function Header({ info, route, onLogout, loggingOut }) {
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
    <div class="end">
      ${info && html`<span class="mode" data-mode=${info.mode} title=${info.data_dir || ''}>
        ${info.mode}${info.version ? ` · ${info.version}` : ''}
      </span>`}
      ${onLogout && html`<button id="logout" type="button" class="logout" onClick=${onLogout} disabled=${loggingOut}
        title="end this session on the server">${loggingOut ? 'Logging out…' : 'Log out'}</button>`}
    </div>
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
    // A 401 (the stored session is already gone): show #login-error, unless logging out.
    setUnauthorizedHandler((e) =>
      setState((s) => (s.loggedOut || s.loggingOut ? s : { ...s, login: `The session has ended: ${e.message}. ${LOGIN_HINT}` })),
    );
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

  // Unmount the pages first (their streams and requests stop), then end the session.
  const onLogout = async () => {
    setState((s) => ({ ...s, loggingOut: true }));
    const problem = await logout();
    setState({
      loggedOut: problem
        ? `${LOGGED_OUT} (The server did not confirm the end of the session: ${errorText(problem)}. It ends by itself when it expires.)`
        : LOGGED_OUT,
    });
  };

  let main;
  if (state.loading) main = html`<p class="muted">Connecting…</p>`;
  else if (state.loggingOut) main = html`<p class="muted">Logging out…</p>`;
  else if (state.loggedOut) main = html`<p id="logged-out" class="notice" role="status">${state.loggedOut}</p>`;
  else if (state.login) main = html`<p id="login-error" class="error" role="alert">${state.login}</p>`;
  else if (state.error) main = html`<p class="error" role="alert">${state.error}</p>`;
  else if (route.page === 'default') main = null;
  else main = html`<${Page} route=${route} info=${info} />`;

  const loggedIn = !state.loading && !state.login && !state.loggedOut && getSession() !== null;
  return html`<${Header} info=${state.loggedOut ? null : info} route=${route}
      onLogout=${loggedIn || state.loggingOut ? onLogout : null} loggingOut=${!!state.loggingOut} />
    <main>${main}</main>`;
}

render(html`<${App} />`, document.getElementById('app'));
