// The dashboard's entry point: a hash router over the views, the navigation bar, and
// what happens when the session ends (back to the login page, saying why).

import { describe, onUnauthorized, post } from './api.js';
import { errorBox, h } from './dom.js';
import { currentUser, forgetUser, setNotice } from './session.js';
import { renderCompare } from './views/compare.js';
import { renderCreate } from './views/create.js';
import { renderLogin } from './views/login.js';
import { renderModel } from './views/model.js';
import { renderRuns } from './views/runs.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('whoami');
const banner = document.getElementById('banner');

const ROUTES = [
  [/^\/login$/, renderLogin],
  [/^\/$/, renderRuns],
  [/^\/new$/, renderCreate],
  [/^\/models\/(\d+)$/, renderModel],
  [/^\/compare$/, renderCompare],
];

// '#/models/3?x=1' -> {path: '/models/3', params: URLSearchParams('x=1')}
export function location() {
  const raw = window.location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = raw.split('?');
  return { path: path || '/', params: new URLSearchParams(query), raw };
}

export function navigate(path) {
  const target = `#${path}`;
  if (window.location.hash === target) route();
  else window.location.hash = target;
}

let dispose = null;
let generation = 0;

function showBanner(text) {
  banner.textContent = text ?? '';
  banner.hidden = !text;
}

function updateNav(path) {
  const user = currentUser();
  nav.hidden = !user || path === '/login';
  who.textContent = user ? `Logged in as ${user.username}` : '';
  for (const link of nav.querySelectorAll('a[data-path]')) {
    if (link.dataset.path === path) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

async function route() {
  const here = generation + 1;
  generation = here;
  dispose?.();
  dispose = null;
  showBanner(null);
  const { path, params } = location();
  updateNav(path);
  const found = ROUTES.find(([re]) => re.test(path));
  const view = h('div', { class: 'view' });
  main.replaceChildren(view);
  if (!found) {
    view.append(h('h1', {}, 'Not found'),
      h('p', {}, 'There is no page at this address. ', h('a', { href: '#/' }, 'Go to the runs.')));
    return;
  }
  const [re, render] = found;
  const args = re.exec(path).slice(1);
  try {
    const cleanup = await render(view, { args, params, navigate });
    if (here !== generation) cleanup?.();
    else dispose = cleanup ?? null;
  } catch (err) {
    if (here !== generation) return;
    view.append(errorBox(describe(err)));
  }
  if (here === generation) {
    const heading = view.querySelector('h1');
    if (heading && document.activeElement === document.body) {
      heading.setAttribute('tabindex', '-1');
      heading.focus({ preventScroll: true });
    }
  }
}

// Any 401: the session is gone (expired, logged out elsewhere, or never there).
onUnauthorized(() => {
  const { path, raw } = location();
  if (path === '/login') return;
  const hadUser = currentUser() !== null;
  forgetUser();
  setNotice(hadUser ? 'Your session has expired. Log in again to continue.'
    : 'Log in to see your training runs.');
  navigate(`/login?next=${encodeURIComponent(raw)}`);
});

document.getElementById('logout').addEventListener('click', async () => {
  try {
    await post('/logout/');
  } catch (err) {
    if (err.status !== 401) {
      showBanner(`Logging out failed: ${describe(err)}`);
      return;
    }
  }
  forgetUser();
  setNotice('You have logged out.');
  navigate('/login');
});

document.querySelector('.skip-link').addEventListener('click', (event) => {
  event.preventDefault();
  main.focus();
});

window.addEventListener('hashchange', route);
window.addEventListener('unhandledrejection', (event) => {
  showBanner(describe(event.reason));
});
window.addEventListener('offline', () => showBanner('You are offline: the dashboard cannot reach the service.'));
window.addEventListener('online', () => showBanner(null));
route();
