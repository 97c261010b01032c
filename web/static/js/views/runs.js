// The runs list: GET /models/, newest first, filtered by status and algorithm, in pages.
// The filters and the page live in the address (#/?status=running&page=2), so the
// browser's back button and a bookmark keep them. Runs can be picked for comparison.

import { get } from '../api.js';
import { ALGORITHMS, STATUSES, badge, fmtTime, h, runTitle } from '../dom.js';
import { field } from '../forms.js';

const PAGE_SIZE = 20;

function query(params) {
  return {
    page: params.get('page') || 1,
    page_size: PAGE_SIZE,
    status: params.get('status') || undefined,
    algorithm: params.get('algorithm') || undefined,
  };
}

function addressOf(filters, page) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(filters)) if (value) params.set(key, value);
  if (page > 1) params.set('page', page);
  const text = params.toString();
  return text ? `/?${text}` : '/';
}

function filtersForm(params, navigate) {
  const status = field({ name: 'status', label: 'Status', control: 'select',
    options: [['', 'Any status'], ...STATUSES.map((v) => [v, v])] });
  const algorithm = field({ name: 'algorithm', label: 'Algorithm', control: 'select',
    options: [['', 'Any algorithm'], ...ALGORITHMS.map((v) => [v, v.toUpperCase()])] });
  status.control.value = params.get('status') ?? '';
  algorithm.control.value = params.get('algorithm') ?? '';
  const apply = () => navigate(addressOf({
    status: status.control.value, algorithm: algorithm.control.value }, 1));
  status.control.addEventListener('change', apply);
  algorithm.control.addEventListener('change', apply);
  const form = h('form', { class: 'filters', 'aria-label': 'Filter runs' },
    status.wrapper, algorithm.wrapper);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    apply();
  });
  return form;
}

function row(model, selected, onToggle) {
  const box = h('input', { type: 'checkbox', id: `pick-${model.id}`, checked: selected.has(model.id),
    'aria-label': `Select ${runTitle(model)} for comparison` });
  box.addEventListener('change', () => onToggle(model.id, box.checked));
  return h('tr', {},
    h('td', { 'data-label': 'Compare' }, box),
    h('th', { scope: 'row', 'data-label': 'Run' },
      h('a', { href: `#/models/${model.id}` }, runTitle(model))),
    h('td', { 'data-label': 'Status' }, badge(model.status)),
    h('td', { 'data-label': 'Algorithm' }, model.algorithm.toUpperCase()),
    h('td', { 'data-label': 'Environment' }, model.env_id),
    h('td', { 'data-label': 'Episodes' }, `${model.current_episode} / ${model.target_episode}`),
    h('td', { 'data-label': 'Created' }, fmtTime(model.create_time)));
}

function pager(data, filters, navigate) {
  if (data.total_pages <= 1) return null;
  const go = (page) => () => navigate(addressOf(filters, page));
  return h('nav', { class: 'pager', 'aria-label': 'Pages' },
    h('button', { type: 'button', class: 'secondary', disabled: data.page <= 1,
      onClick: go(data.page - 1) }, '← Newer'),
    h('span', {}, `Page ${data.page} of ${data.total_pages}`),
    h('button', { type: 'button', class: 'secondary', disabled: data.page >= data.total_pages,
      onClick: go(data.page + 1) }, 'Older →'));
}

export async function renderRuns(view, { params, navigate }) {
  const filters = { status: params.get('status'), algorithm: params.get('algorithm') };
  const selected = new Set();
  const compare = h('button', { type: 'button', disabled: true }, 'Compare selected');
  const onToggle = (id, on) => {
    if (on) selected.add(id);
    else selected.delete(id);
    compare.disabled = selected.size < 2;
    compare.textContent = `Compare selected (${selected.size})`;
  };
  compare.addEventListener('click', () => navigate(`/compare?ids=${[...selected].join(',')}`));
  const refresh = h('button', { type: 'button', class: 'secondary',
    onClick: () => navigate(addressOf(filters, Number(params.get('page') || 1))) }, 'Refresh');

  view.append(
    h('div', { class: 'title-row' }, h('h1', {}, 'Training runs'),
      h('a', { class: 'button', href: '#/new' }, 'New run')),
    filtersForm(params, navigate),
  );
  const data = await get('/models/', query(params));
  const filtered = filters.status || filters.algorithm;
  view.append(h('p', { class: 'count', role: 'status' },
    `${data.total} run${data.total === 1 ? '' : 's'}${filtered ? ' match these filters' : ''}.`));
  if (!data.models.length) {
    view.append(h('p', { class: 'empty' }, filtered
      ? 'No runs match these filters. '
      : 'No runs yet. ', h('a', { href: '#/new' }, 'Start one from a preset.')));
    return;
  }
  view.append(
    h('div', { class: 'table-wrap' }, h('table', { class: 'runs' },
      h('caption', { class: 'visually-hidden' }, 'Training runs, newest first'),
      h('thead', {}, h('tr', {}, ['Compare', 'Run', 'Status', 'Algorithm', 'Environment',
        'Episodes', 'Created'].map((text) => h('th', { scope: 'col' }, text)))),
      h('tbody', {}, data.models.map((model) => row(model, selected, onToggle))))),
    h('div', { class: 'list-actions' }, compare, refresh),
  );
  const pages = pager(data, filters, navigate);
  if (pages) view.append(pages);
}
