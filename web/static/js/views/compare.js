// Several runs on one chart: their smoothed rewards (and, on request, the raw ones) by
// episode, with a table of their settings and results. #/compare?ids=3,5,8; without two
// ids it offers the newest runs to choose from.

import { get } from '../api.js';
import { LineChart } from '../chart.js';
import { Episodes } from '../episodes.js';
import { badge, fmt, h, runTitle } from '../dom.js';

const MAX_RUNS = 8;

function picker(view, preselected, navigate, models) {
  const chosen = new Set(preselected);
  const go = h('button', { type: 'submit', disabled: chosen.size < 2 }, 'Compare');
  const items = models.map((model) => {
    const box = h('input', { type: 'checkbox', id: `cmp-${model.id}`, name: 'ids', value: model.id,
      checked: chosen.has(model.id) });
    box.addEventListener('change', () => {
      if (box.checked) chosen.add(model.id);
      else chosen.delete(model.id);
      go.disabled = chosen.size < 2 || chosen.size > MAX_RUNS;
    });
    return h('li', {}, box, h('label', { for: box.id }, `${runTitle(model)} · `,
      `${model.algorithm.toUpperCase()} on ${model.env_id} · ${model.current_episode} episodes `,
      badge(model.status)));
  });
  const form = h('form', { class: 'card' },
    h('fieldset', {}, h('legend', {}, `Choose 2 to ${MAX_RUNS} runs`),
      h('ul', { class: 'pick-list' }, items)),
    h('div', { class: 'actions' }, go));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    navigate(`/compare?ids=${[...chosen].join(',')}`);
  });
  view.append(form);
}

function table(models) {
  const rows = models.map((m) => h('tr', {},
    h('th', { scope: 'row' }, h('a', { href: `#/models/${m.id}` }, runTitle(m))),
    h('td', {}, badge(m.status)),
    h('td', {}, `${m.algorithm.toUpperCase()} · ${m.env_id}`),
    h('td', {}, String(m.current_episode)),
    h('td', {}, fmt(m.learning_rate)),
    h('td', {}, String(m.batch_size)),
    h('td', {}, fmt(m.best_eval_return))));
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('caption', {}, 'The compared runs'),
    h('thead', {}, h('tr', {}, ['Run', 'Status', 'Algorithm', 'Episodes', 'Learning rate',
      'Batch', 'Best evaluation'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows)));
}

export async function renderCompare(view, { params, navigate }) {
  const ids = [...new Set((params.get('ids') ?? '').split(',').map(Number)
    .filter((n) => Number.isInteger(n) && n > 0))].slice(0, MAX_RUNS);
  view.append(h('h1', {}, 'Compare runs'));
  if (ids.length < 2 || params.has('pick')) {
    view.append(h('p', {}, 'Pick the runs to put on one chart.'));
    const { models } = await get('/models/', { page_size: 50 });
    if (models.length < 2) {
      view.append(h('p', { class: 'empty' }, 'You need at least two runs to compare. ',
        h('a', { href: '#/new' }, 'Start a run.')));
      return undefined;
    }
    picker(view, ids, navigate, models);
    return undefined;
  }

  const models = await Promise.all(ids.map((id) => get(`/models/${id}/`)));
  const runs = models.map((model) => ({ model, episodes: new Episodes(model.id, () => {}) }));
  await Promise.all(runs.map((run) => run.episodes.sync()));

  const showRaw = h('input', { type: 'checkbox', id: 'cmp-raw' });
  const section = h('section', { class: 'panel wide', 'aria-labelledby': 'cmp-h' },
    h('div', { class: 'title-row' }, h('h2', { id: 'cmp-h' }, 'Smoothed episode rewards'),
      h('div', { class: 'field check' }, showRaw, h('label', { for: showRaw.id }, 'Show raw rewards'))));
  view.append(h('p', { class: 'crumbs' }, h('a', { href: `#/compare?pick=1&ids=${ids.join(',')}` }, 'Change the selection')),
    section, table(models));
  const chart = new LineChart(section, { label: `Episode rewards of ${models.length} runs`,
    xLabel: 'Episode', yLabel: 'Reward', height: 320, empty: 'None of these runs has episodes yet.' });
  const draw = () => chart.setSeries(runs.flatMap(({ model, episodes }, i) => [
    showRaw.checked ? { label: `${runTitle(model)} reward`, xs: episodes.xs, ys: episodes.raw,
      kind: 'raw', color: i } : null,
    { label: runTitle(model), xs: episodes.xs, ys: episodes.smoothed, kind: 'line', color: i },
  ].filter(Boolean)));
  showRaw.addEventListener('change', draw);
  draw();
  return () => {
    chart.destroy();
    runs.forEach((run) => run.episodes.close());
  };
}
